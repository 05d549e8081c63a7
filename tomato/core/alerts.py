"""Alerts: the failures an operator must hear about, said once in the log and once to the metrics.

A context calls `alert(...)`: one ERROR line on its own logger, with the ids an operator needs both in the text
(`key=value`, for text logs) and as structured `extra` fields (JSON logs show them as fields), plus `alert=<name>`.
`measure(...)` reports a figure a context computed (the ledger check's violations). Listeners hear both: the runtime
registers one that turns them into Prometheus counters and gauges (runtime.alert_metrics), so contexts never
import prometheus. A listener that raises is logged and skipped; it never breaks the caller.

Alert names (docs/observability.md, "Alerts"): `webhook_delivery_failed`, `breaker_stuck_open`,
`reconciliation_discrepancies`, `ledger_check_violation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Field = str | int | float | None

WEBHOOK_DELIVERY_FAILED = "webhook_delivery_failed"
BREAKER_STUCK_OPEN = "breaker_stuck_open"
RECONCILIATION_DISCREPANCIES = "reconciliation_discrepancies"
LEDGER_CHECK_VIOLATION = "ledger_check_violation"
LEDGER_CHECK_VIOLATIONS = "ledger_check_violations"  # measured: violations found by the last full check


@dataclass(frozen=True)
class Signal:
    """An alert (`value` 1, `alert` True) or a measured figure (`alert` False)."""

    name: str
    value: float = 1.0
    fields: Mapping[str, Field] = field(default_factory=dict)
    alert: bool = True


Listener = Callable[[Signal], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Adds `listener`; returns the function that removes it (tests, a process that stops)."""
    _listeners.append(listener)

    def remove() -> None:
        if listener in _listeners:
            _listeners.remove(listener)

    return remove


def alert(logger: logging.Logger, name: str, message: str, **fields: Field) -> None:
    """One ERROR line: `message` followed by the ids as `key=value`; `fields` also go to `extra` for JSON logs."""
    ids = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.error("%s [alert=%s %s]", message, name, ids, extra={"alert": name, **fields})
    _tell(Signal(name, 1.0, dict(fields)))


def measure(name: str, value: float) -> None:
    """A figure for a gauge, computed by a context (no log line)."""
    _tell(Signal(name, value, {}, alert=False))


def _tell(signal: Signal) -> None:
    for listener in list(_listeners):
        try:
            listener(signal)
        except Exception:
            logging.getLogger(__name__).warning("an alert listener failed on %s", signal.name, exc_info=True)
