"""The Alipay OpenAPI (RSA2) channel adapter: build it with `AlipayAdapter(parse_config(cfg), http)`."""

from tomato.channel.adapters.alipay.adapter import (
    AlipayAdapter,
    AlipayConfig,
    StatementUnavailable,
    parse_config,
)

__all__ = ["AlipayAdapter", "AlipayConfig", "StatementUnavailable", "parse_config"]
