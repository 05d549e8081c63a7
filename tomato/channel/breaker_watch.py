"""Which channel accounts' breakers stay open, and for how long: an ERROR line once per open period past a threshold.

A breaker that opens and closes again within its reset timeout is routine (routing skips the account meanwhile);
one that stays open means an account is out of service and an operator must look. The stored state cannot say how
long: every failed probe moves `opened_at` forward. So the watch remembers, per account, when it first saw the
current open period begin (the stored `opened_at` at that sighting) and forgets it when it sees the breaker closed.
It is checked every few seconds by the scheduler's `channel.breaker_watch` job, which reads the shared state
(Redis) of every ACTIVE account; a watch started while a breaker is already open counts from its `opened_at`,
so the first alert may come up to one reset timeout late.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from tomato.channel.breakers import BreakerRegistry
from tomato.core.alerts import BREAKER_STUCK_OPEN, alert

log = logging.getLogger(__name__)
REPORT_FOR_S = 60.0  # a watch not checked for this long (another scheduler holds the job now) reports nothing


class BreakerWatch:
    def __init__(self, breakers: BreakerRegistry, alert_after_s: float) -> None:
        self._breakers = breakers
        self._after = alert_after_s
        self._since: dict[str, float] = {}  # account -> epoch seconds the current open period began
        self._alerted: set[str] = set()  # accounts already alerted in their current open period
        self._watched: tuple[str, ...] = ()
        self._checked_at: float | None = None

    async def check(self, account_ids: Sequence[str], now: float) -> int:
        """Reads the breakers of `account_ids` and alerts for each open past the threshold, once per open period;
        returns how many alerted now. Accounts no longer listed are forgotten."""
        self._watched, self._checked_at = tuple(account_ids), now
        for gone in set(self._since) - set(account_ids):
            self._forget(gone)
        raised = 0
        for account_id in account_ids:
            await self._breakers.refresh(account_id)
            view = self._breakers.view(account_id)
            if view.opened_at is None:  # closed: the open period, if any, is over
                self._forget(account_id)
                continue
            since = self._since.setdefault(account_id, view.opened_at.timestamp())
            if now - since >= self._after and account_id not in self._alerted:
                self._alerted.add(account_id)
                raised += 1
                alert(
                    log, BREAKER_STUCK_OPEN,
                    f"breaker of channel account {account_id} open for {now - since:.0f}s",
                    channel_account_id=account_id,
                    open_since=datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
                    open_seconds=round(now - since), failures=view.fail_counter,
                )  # fmt: skip
        return raised

    def watched(self) -> tuple[str, ...]:
        """The accounts of the last check (the scheduler's metrics show their breakers though it calls none)."""
        return self._watched

    def open_seconds(self, now: float) -> dict[str, float]:
        """Per watched account, how long its breaker has been open in the current period (0: closed at the last
        check). Empty unless this watch checked within `REPORT_FOR_S`: a process that does not run the watch (or
        no longer does) would report a state nobody refreshes."""
        if self._checked_at is None or now - self._checked_at > REPORT_FOR_S:
            return {}
        return {a: max(0.0, now - self._since[a]) if a in self._since else 0.0 for a in self._watched}

    def _forget(self, account_id: str) -> None:
        self._since.pop(account_id, None)
        self._alerted.discard(account_id)
