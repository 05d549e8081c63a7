"""The bank (UnionPay ACP 5.1.0-style) channel adapter: build it with `BankAdapter(parse_config(cfg), http)`."""

from tomato.channel.adapters.bank.adapter import BankAdapter
from tomato.channel.adapters.bank.config import BankConfig, parse_config
from tomato.channel.protocol import StatementUnavailable

__all__ = ["StatementUnavailable", "BankAdapter", "BankConfig", "parse_config"]
