"""Ledger accounts, journal entries, fees, settlement and balances (consumes pay.* and refund.* events)."""
