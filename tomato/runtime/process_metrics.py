"""What the background roles report on `/metrics`: the backlogs an operator alerts on, read at scrape time through
the contexts' services, and the scheduler's job runs.

`backlog_probe(c)` reads, in one scrape: unsent outbox rows and the age of the oldest (relay lag), webhook
deliveries waiting and given up, outbox events the ledger has not booked yet, and reconciliation discrepancies
still open. Every process that runs these roles shows them — `tomato worker` and `tomato scheduler` on their own
metrics port, `tomato dev` on its gateway's `/metrics` — with the same values, because they are read from the
database. Every name is described in docs/observability.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from tomato.account.service import LedgerService
from tomato.bootstrap import Container
from tomato.gateway.channel_metrics import channel_health
from tomato.gateway.metrics import Metrics, gauge
from tomato.notice.service import NoticeService
from tomato.runtime.alert_metrics import AlertMetrics

Probe = Callable[[], Awaitable[list[Metric]]]


def backlog_probe(c: Container) -> Probe:
    notice = NoticeService(c.db)
    ledger = LedgerService(c.db, c.settings.business_timezone)

    async def read() -> list[Metric]:
        unsent, oldest_s = await c.relay.backlog()
        deliveries = await notice.backlog()
        return [
            gauge("tomato_outbox_unsent_events", "Outbox events not yet sent to the event bus.", unsent),
            gauge("tomato_outbox_oldest_unsent_age_seconds", "Age of the oldest unsent outbox event (0 when none).",
                  round(oldest_s, 3)),  # fmt: skip
            gauge("tomato_webhook_backlog", "Webhook deliveries not yet made (PENDING, retries included).",
                  deliveries["PENDING"]),  # fmt: skip
            gauge("tomato_webhook_failed_deliveries", "Webhook deliveries given up after the last retry (FAILED).",
                  deliveries["FAILED"]),  # fmt: skip
            gauge("tomato_ledger_booking_lag_events", "Outbox events committed but not yet booked by the ledger.",
                  await ledger.booking_lag()),  # fmt: skip
            gauge("tomato_reconciliation_open_discrepancies", "Reconciliation discrepancies not yet resolved (OPEN).",
                  await c.reconciliation.open_discrepancies()),  # fmt: skip
        ]

    return read


def attach_process_metrics(metrics: Metrics, c: Container) -> None:
    """The backlogs on `metrics` (a role's metrics port, or `tomato dev`'s gateway), and the alerts this process
    raises (runtime.alert_metrics)."""
    metrics.probe(backlog_probe(c))
    AlertMetrics(metrics.registry).listen()


def attach_breakers(metrics: Metrics, c: Container) -> None:
    """The channel breakers as this process sees them (a gateway app reports them already)."""
    metrics.collector(lambda: channel_health(c.channels))


class JobMetrics:
    """The scheduler's runs per job and outcome (`ok`, `failed`, `skipped`: another scheduler holds the lease,
    `lost`: the lease went elsewhere mid-run, `cancelled`: cut short by the shutdown), how long they took, and when
    each job last succeeded."""

    OUTCOMES = ("ok", "failed", "skipped", "lost", "cancelled")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter("tomato_job_runs", "Scheduler job runs by job and outcome.", ["job", "outcome"],
                            registry=registry)  # fmt: skip
        self.seconds = Histogram(
            "tomato_job_duration_seconds", "How long scheduler job runs took (runs that held the lease).", ["job"],
            buckets=(0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0), registry=registry,
        )  # fmt: skip
        self.last_ok = Gauge("tomato_job_last_success_timestamp_seconds", "Unix time of each job's last ok run.",
                             ["job"], registry=registry)  # fmt: skip

    def observe(self, job: str, outcome: str, seconds: float) -> None:
        self.runs.labels(job, outcome).inc()
        if outcome != "skipped":
            self.seconds.labels(job).observe(seconds)
        if outcome == "ok":
            self.last_ok.labels(job).set(time.time())
