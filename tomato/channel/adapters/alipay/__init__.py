"""The Alipay OpenAPI (RSA2) channel adapter: build it with `AlipayAdapter(parse_config(cfg), http)`."""

from tomato.channel.adapters.alipay.adapter import (
    AlipayAdapter,
    AlipayConfig,
    parse_config,
)
from tomato.channel.protocol import StatementUnavailable

__all__ = ["StatementUnavailable", "AlipayAdapter", "AlipayConfig", "parse_config"]
