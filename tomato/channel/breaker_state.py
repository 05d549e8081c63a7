"""The breaker's state machine as one pure function, and its in-process store.

One state per channel account, shared by every caller that sees the same store: `closed` with a count of
consecutive unwell answers, or `open` since `opened_at`. Half-open is not stored: an open breaker whose reset
timeout has passed admits exactly one probe, which holds the probe slot (`probe_token`) until it reports — or
until `probe_until`, one reset timeout later, so a probe whose process died does not block the account for ever.

Outcomes: a success resets the count (and closes the breaker when it is the probe's); an unwell answer adds one
(and reopens when it is the probe's); a cancelled probe only frees the slot. Answers of calls that started
before the breaker opened change nothing while it is open. `breaker_redis.py` runs the same `step` in Lua.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

CLOSED, OPEN = "closed", "open"


class Op(StrEnum):
    ACQUIRE = "acquire"  # may this call go? (and take the probe slot when half-open)
    SUCCESS = "success"
    FAILURE = "failure"
    RELEASE = "release"  # the call was cancelled: neither success nor failure


class Verdict(StrEnum):
    GO = "go"
    PROBE = "probe"  # goes, holding the single half-open probe slot
    REFUSED = "refused"


@dataclass(frozen=True)
class Shared:
    """One account's breaker state as every process sees it (times are epoch seconds)."""

    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0
    probe_token: str = ""

    def half_open(self, now: float, reset_s: float) -> bool:
        return self.state == OPEN and now >= self.opened_at + reset_s

    def admits(self, now: float, reset_s: float) -> bool:
        """Would a call be let through now (closed, or half-open with the probe slot free)?"""
        return self.state == CLOSED or (self.half_open(now, reset_s) and self.probe_until <= now)


def step(s: Shared, op: Op, *, now: float, fail_max: int, reset_s: float, token: str) -> tuple[Verdict, Shared]:
    """The transition for one event; `token` names the caller's probe ("" when the call is not a probe)."""
    if op is Op.ACQUIRE:
        if s.state == CLOSED:
            return Verdict.GO, s
        if not s.admits(now, reset_s):
            return Verdict.REFUSED, s
        return Verdict.PROBE, replace(s, probe_until=now + reset_s, probe_token=token)
    mine = s.state == OPEN and token != "" and s.probe_token == token
    if op is Op.SUCCESS:
        if s.state == CLOSED:
            return Verdict.GO, replace(s, failures=0)
        return Verdict.GO, Shared() if mine else s
    if op is Op.FAILURE:
        if s.state == CLOSED:
            failures = s.failures + 1
            if failures >= fail_max:
                return Verdict.GO, Shared(OPEN, failures, now)
            return Verdict.GO, replace(s, failures=failures)
        return Verdict.GO, replace(s, opened_at=now, probe_until=0.0, probe_token="") if mine else s
    return Verdict.GO, replace(s, probe_until=0.0, probe_token="") if mine else s  # RELEASE


class MemoryBreakerStore:
    """The embedded backend: the states in a dict, shared by every registry of the process on the same cache."""

    def __init__(self) -> None:
        self._states: dict[str, Shared] = {}

    async def apply(
        self, account_id: str, op: Op, *, now: float, fail_max: int, reset_s: float, token: str
    ) -> tuple[Verdict, Shared]:
        verdict, new = step(
            self._states.get(account_id, Shared()), op, now=now, fail_max=fail_max, reset_s=reset_s, token=token
        )
        if new == Shared():
            self._states.pop(account_id, None)
        else:
            self._states[account_id] = new
        return verdict, new

    async def read(self, account_ids: list[str]) -> dict[str, Shared]:
        return {a: self._states.get(a, Shared()) for a in account_ids}
