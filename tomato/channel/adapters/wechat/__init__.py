"""The WeChat Pay API v3 channel adapter: build it with `WechatAdapter(parse_config(cfg), http)`."""

from tomato.channel.adapters.wechat.adapter import WechatAdapter
from tomato.channel.adapters.wechat.config import WechatConfig, parse_config
from tomato.channel.protocol import StatementUnavailable

__all__ = ["StatementUnavailable", "WechatAdapter", "WechatConfig", "parse_config"]
