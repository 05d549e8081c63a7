"""Errors of the account context, each with its stable API code."""

from __future__ import annotations

from tomato.core.errors import TomatoError


class InsufficientBalance(TomatoError):
    """A guarded line would take an account below zero; the caller's unit of work rolls back, nothing is written."""

    code = "INSUFFICIENT_BALANCE"
    status = 409


class LedgerConflict(TomatoError):
    """An entry's key was already booked with other lines: a replay that disagrees with history is refused."""

    code = "LEDGER_ENTRY_CONFLICT"
    status = 409


class JournalNotFound(TomatoError):
    code = "JOURNAL_NOT_FOUND"
    status = 404
