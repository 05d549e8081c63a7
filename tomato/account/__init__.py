"""The account context: a double-entry ledger of every fen that moves through the platform.

It books what other contexts announce through the outbox (payments, refunds, anomalies), runs settlement and
payouts, and answers balances. Journal entries are immutable and balanced; each is booked exactly once, keyed by
its source (`accounts` names the accounts, `ledger` posts).
"""
