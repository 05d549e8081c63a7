"""Channel health at scrape time: breaker state and last-5-minute success rate and latency per channel account, as
this process sees them (breaker state is shared through Redis when it is configured), and how long each breaker
has been open where the breaker watch runs (the scheduler holding its job: channel.breaker_watch)."""

from __future__ import annotations

import time

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from tomato.channel.service import ChannelService

STATE_VALUE = {"closed": 0, "half-open": 1, "open": 2}


def channel_health(channels: ChannelService) -> list[Metric]:
    state = GaugeMetricFamily(
        "tomato_channel_breaker_state", "Breaker per channel account (0 closed, 1 half-open, 2 open).",
        labels=["account"],
    )  # fmt: skip
    ratio = GaugeMetricFamily(
        "tomato_channel_success_ratio", "Share of healthy channel calls over the last 5 minutes.", labels=["account"]
    )
    latency = GaugeMetricFamily(
        "tomato_channel_latency_ms", "Channel call latency over the last 5 minutes.", labels=["account", "quantile"]
    )
    open_s = GaugeMetricFamily(
        "tomato_channel_breaker_open_seconds", "How long the account's breaker has been open (0 when closed).",
        labels=["account"],
    )  # fmt: skip
    now = time.time()
    for account_id in sorted(set(channels.health.accounts()) | set(channels.breaker_watch.watched())):
        view, snap = channels.breakers.view(account_id), channels.health.snapshot(account_id)
        state.add_metric([account_id], STATE_VALUE.get(view.state, 0))
        if snap.calls and snap.success_rate is not None:
            ratio.add_metric([account_id], round(snap.success_rate, 4))
        if snap.calls and snap.p50_ms is not None and snap.p99_ms is not None:
            latency.add_metric([account_id, "0.5"], round(snap.p50_ms, 2))
            latency.add_metric([account_id, "0.99"], round(snap.p99_ms, 2))
    for account_id, seconds in sorted(channels.breaker_watch.open_seconds(now).items()):
        open_s.add_metric([account_id], round(seconds, 1))
    return [state, ratio, latency, open_s]
