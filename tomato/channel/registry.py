"""Which adapter serves which channel: config parsing and construction, one entry per channel family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tomato.channel.adapters.alipay import AlipayAdapter
from tomato.channel.adapters.alipay import parse_config as parse_alipay
from tomato.channel.adapters.bank import BankAdapter
from tomato.channel.adapters.bank import parse_config as parse_bank
from tomato.channel.adapters.wechat import WechatAdapter
from tomato.channel.adapters.wechat import parse_config as parse_wechat
from tomato.channel.protocol import AckResponse, ChannelAdapter


@dataclass(frozen=True)
class ChannelFamily:
    name: str
    pay_methods: frozenset[str]
    validate: Callable[[Mapping[str, Any]], object]  # raises ValueError naming the field
    build: Callable[[Mapping[str, Any], httpx.AsyncClient], ChannelAdapter]
    ack: Callable[[bool, str], AckResponse]  # the adapter's callback answer, which needs no account


def _alipay(config: Mapping[str, Any], http: httpx.AsyncClient) -> ChannelAdapter:
    return AlipayAdapter(parse_alipay(dict(config)), http)


def _bank(config: Mapping[str, Any], http: httpx.AsyncClient) -> ChannelAdapter:
    return BankAdapter(parse_bank(dict(config)), http)


def _wechat(config: Mapping[str, Any], http: httpx.AsyncClient) -> ChannelAdapter:
    return WechatAdapter(parse_wechat(dict(config)), http)


FAMILIES: dict[str, ChannelFamily] = {
    "alipay": ChannelFamily(
        "alipay", AlipayAdapter.pay_methods, lambda c: parse_alipay(dict(c)), _alipay, AlipayAdapter.callback_ack
    ),
    "wechat": ChannelFamily(
        "wechat", WechatAdapter.pay_methods, lambda c: parse_wechat(dict(c)), _wechat, WechatAdapter.callback_ack
    ),
    "bank": ChannelFamily(
        "bank", BankAdapter.pay_methods, lambda c: parse_bank(dict(c)), _bank, BankAdapter.callback_ack
    ),
}
