"""Which adapter serves which channel: config parsing and construction, one entry per channel family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tomato.channel.adapters.alipay import AlipayAdapter
from tomato.channel.adapters.alipay import parse_config as parse_alipay
from tomato.channel.protocol import ChannelAdapter


@dataclass(frozen=True)
class ChannelFamily:
    name: str
    pay_methods: frozenset[str]
    validate: Callable[[Mapping[str, Any]], object]  # raises ValueError naming the field
    build: Callable[[Mapping[str, Any], httpx.AsyncClient], ChannelAdapter]


def _alipay(config: Mapping[str, Any], http: httpx.AsyncClient) -> ChannelAdapter:
    return AlipayAdapter(parse_alipay(dict(config)), http)


FAMILIES: dict[str, ChannelFamily] = {
    "alipay": ChannelFamily("alipay", AlipayAdapter.pay_methods, lambda c: parse_alipay(dict(c)), _alipay),
}
