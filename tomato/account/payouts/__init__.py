"""Payouts: money out of a merchant's `available` balance to a bank account (docs/finance.md "Payouts").

Two-phase, as a pending transfer: accepting a payout holds its amount (merchant_available → payout_in_transit) in
the unit of work that inserts it; the bank's success posts it (payout_in_transit → bank), its failure or the final
timeout voids it (payout_in_transit → merchant_available). Publishes `payout.succeeded` and `payout.failed` (the
payout object as data) through the outbox. Modules: models, schemas, repository (never commits), service (units of
work and the bank calls, never inside one), ledger (the three entries), errors, events.
"""
