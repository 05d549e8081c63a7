"""Prometheus lines for channel health: breaker state and last-5-minute success rate and latency per account."""

from __future__ import annotations

from tomato.channel.service import ChannelService

STATE_VALUE = {"closed": 0, "half-open": 1, "open": 2}


def channel_health_lines(channels: ChannelService) -> list[str]:
    lines = [
        "# HELP tomato_channel_breaker_state Breaker per channel account (0 closed, 1 half-open, 2 open).",
        "# TYPE tomato_channel_breaker_state gauge",
        "# HELP tomato_channel_success_ratio Share of healthy channel calls over the last 5 minutes.",
        "# TYPE tomato_channel_success_ratio gauge",
        "# HELP tomato_channel_latency_ms Channel call latency over the last 5 minutes.",
        "# TYPE tomato_channel_latency_ms gauge",
    ]
    for account_id in channels.health.accounts():
        label = f'account="{account_id}"'
        view, snap = channels.breakers.view(account_id), channels.health.snapshot(account_id)
        lines.append(f"tomato_channel_breaker_state{{{label}}} {STATE_VALUE.get(view.state, 0)}")
        if snap.calls:
            lines.append(f"tomato_channel_success_ratio{{{label}}} {snap.success_rate:.4f}")
            lines.append(f'tomato_channel_latency_ms{{{label},quantile="0.5"}} {snap.p50_ms:.2f}')
            lines.append(f'tomato_channel_latency_ms{{{label},quantile="0.99"}} {snap.p99_ms:.2f}')
    return lines
