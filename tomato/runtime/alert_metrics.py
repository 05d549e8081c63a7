"""The alerts of `core.alerts` as Prometheus series of this process (docs/observability.md, "Alerts").

Contexts raise alerts without knowing prometheus; this listener counts them: every alert by name, the webhook
deliveries given up and the reconciliation batches that ended with discrepancies under their own names, and the
ledger check's last count as a gauge. Counters are per process (sum them across processes in the alert rule).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from tomato.core import alerts


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.raised = Counter("tomato_alerts", "Alerts raised by this process (ERROR lines with alert=<name>).",
                              ["alert"], registry=registry)  # fmt: skip
        self.deliveries_failed = Counter(
            "tomato_webhook_deliveries_failed", "Webhook deliveries this process gave up after the last retry.",
            registry=registry,
        )  # fmt: skip
        self.recon_discrepancies = Counter(
            "tomato_reconciliation_batches_with_discrepancies",
            "Reconciliation batch runs in this process that ended DISCREPANCIES.", registry=registry,
        )  # fmt: skip
        self.ledger_violations = Gauge(
            "tomato_ledger_check_violations", "Violations found by this process's last full ledger check.",
            registry=registry,
        )  # fmt: skip
        for name in (alerts.WEBHOOK_DELIVERY_FAILED, alerts.BREAKER_STUCK_OPEN, alerts.RECONCILIATION_DISCREPANCIES,
                     alerts.LEDGER_CHECK_VIOLATION):  # fmt: skip
            self.raised.labels(name)  # every series present at 0, so `increase()` sees the first alert
        self._stop: Callable[[], None] | None = None

    def __call__(self, signal: alerts.Signal) -> None:
        if not signal.alert:
            if signal.name == alerts.LEDGER_CHECK_VIOLATIONS:
                self.ledger_violations.set(signal.value)
            return
        self.raised.labels(signal.name).inc()
        if signal.name == alerts.WEBHOOK_DELIVERY_FAILED:
            self.deliveries_failed.inc()
        elif signal.name == alerts.RECONCILIATION_DISCREPANCIES:
            self.recon_discrepancies.inc()

    def listen(self) -> AlertMetrics:
        """Starts hearing this process's alerts (until `close`)."""
        if self._stop is None:
            self._stop = alerts.listen(self)
        return self

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None
