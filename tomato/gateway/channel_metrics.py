"""Channel health at scrape time: breaker state and last-5-minute success rate and latency per channel account, as
this process sees them (breaker state is shared through Redis when it is configured)."""

from __future__ import annotations

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
    for account_id in channels.health.accounts():
        view, snap = channels.breakers.view(account_id), channels.health.snapshot(account_id)
        state.add_metric([account_id], STATE_VALUE.get(view.state, 0))
        if snap.calls and snap.success_rate is not None:
            ratio.add_metric([account_id], round(snap.success_rate, 4))
        if snap.calls and snap.p50_ms is not None and snap.p99_ms is not None:
            latency.add_metric([account_id, "0.5"], round(snap.p50_ms, 2))
            latency.add_metric([account_id, "0.99"], round(snap.p99_ms, 2))
    return [state, ratio, latency]
