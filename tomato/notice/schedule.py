"""The retry schedule (docs/webhooks.md) and the notice settings, read once from `Settings`.

Delays are whole milliseconds after dividing by the time scale, rounded up (never shorter), with a jitter of
0, 2.5 or 5 % added (a delay "may run up to 10 % longer, never shorter"; half of that budget is left for the
queueing overhead). The same finite set of delays serves as the RabbitMQ delay tiers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from tomato.core.netguard import IPNetwork, parse_networks
from tomato.core.settings import Settings

DEFAULT_SCHEDULE = "15,15,30,180,600,1200,1800,1800,1800,3600,10800,10800,10800,21600,21600"
JITTER_STEPS = (0.0, 0.025, 0.05)
HTTP_TIMEOUT_S = 5.0  # success is a 2xx within 5 s; never scaled


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"15,15,30"` → seconds; every delay positive."""
    try:
        delays = tuple(float(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError as exc:
        raise ValueError(f"webhook retry schedule must be comma-separated seconds, got {text!r}") from exc
    if not delays or any(d <= 0 for d in delays):
        raise ValueError("webhook retry schedule needs at least one positive delay")
    return delays


@dataclass(frozen=True)
class RetrySchedule:
    delays_s: tuple[float, ...]
    time_scale: float = 1.0
    jitter_steps: tuple[float, ...] = JITTER_STEPS

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per delay (16 with the default schedule)."""
        return len(self.delays_s) + 1

    def scaled_ms(self, delay_s: float, jitter: float = 0.0) -> int:
        return max(1, math.ceil(delay_s * (1 + jitter) * 1000 / self.time_scale))

    def delay_after(self, attempts_in_round: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after the `attempts_in_round`-th failed attempt; None when it was the last one."""
        if attempts_in_round < 1 or attempts_in_round > len(self.delays_s):
            return None
        jitter = (rng or random).choice(self.jitter_steps)
        return self.scaled_ms(self.delays_s[attempts_in_round - 1], jitter) / 1000

    def tiers_ms(self) -> list[int]:
        """Distinct un-jittered delays: one RabbitMQ delay queue each."""
        return sorted({self.scaled_ms(d) for d in self.delays_s})


@dataclass(frozen=True)
class NoticeConfig:
    """How the consumer, worker and sweepers behave; tests build one directly."""

    schedule: RetrySchedule = field(default_factory=lambda: RetrySchedule(parse_schedule(DEFAULT_SCHEDULE)))
    allowed_networks: tuple[IPNetwork, ...] = ()
    http_timeout_s: float = HTTP_TIMEOUT_S
    concurrency: int = 128  # deliveries attempted at once per process (the work queue's prefetch)
    http_connections: int = 64  # the webhook sender's keep-alive pool, also its cap on requests in flight
    lease_s: float = 15.0  # a claimed delivery is another worker's again after this (> the 5 s timeout)
    sweep_interval_s: float = 2.0
    sweep_grace_s: float = 15.0  # overdue by this much with no worker on it: its wake-up message was lost
    catchup_window_s: float = 6 * 3600.0  # how far back a starting process looks for unconsumed events
    batch_size: int = 200
    response_body_bytes: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> NoticeConfig:
        """`webhook_retry_schedule` and `webhook_concurrency` are optional settings (defaults above)."""
        schedule_text = getattr(settings, "webhook_retry_schedule", None) or DEFAULT_SCHEDULE
        values: dict[str, object] = {
            "schedule": RetrySchedule(parse_schedule(str(schedule_text)), settings.webhook_time_scale),
            "allowed_networks": parse_networks(settings.webhook_allowed_networks),
        }
        concurrency = getattr(settings, "webhook_concurrency", None)
        if isinstance(concurrency, int) and concurrency > 0:
            values["concurrency"] = concurrency
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
