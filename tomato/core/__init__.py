"""Shared kernel: settings, storage, money, ids, errors, crypto, cache, outbox and the event bus.

`core` imports no bounded context; every context may import `core`.
"""
