"""The bank (UnionPay ACP 5.1.0-style) channel adapter: build it with `BankAdapter(parse_config(cfg), http)`."""

from tomato.channel.adapters.bank.adapter import BankAdapter, StatementUnavailable
from tomato.channel.adapters.bank.config import BankConfig, parse_config

__all__ = ["BankAdapter", "BankConfig", "StatementUnavailable", "parse_config"]
