"""The statement interface reconciliation matches against: normalised lines from any channel's file.

`parse_statement(channel, stream)` streams: bounded memory whatever the file size, every malformed row yielded as a
`MalformedRow` with its line number (never skipped), a file failing its hash or structure refused whole with
`StatementRejected` — possibly after lines were yielded, so a consumer discards what it got from such a file.
"""

from __future__ import annotations

from typing import BinaryIO

from tomato.reconciliation.parsers import alipay, bank, wechat
from tomato.reconciliation.parsers.common import (
    LineKind,
    MalformedRow,
    Parsed,
    StatementLine,
    StatementRejected,
)

__all__ = ["CHANNELS", "LineKind", "MalformedRow", "Parsed", "StatementLine", "StatementRejected", "parse_statement"]

CHANNELS = ("alipay", "wechat", "bank")


def parse_statement(channel: str, stream: BinaryIO, *, expected_sha1: str | None = None) -> Parsed:
    """Normalised lines of one statement file as the channel's adapter downloads it.

    alipay: the bill zip; wechat: the bill text, gzip or plain (`expected_sha1`, WeChat's `hash_value`, is checked
    when given); bank: the file zip. An unknown channel raises ValueError at once.
    """
    if channel == "alipay":
        return alipay.parse(stream)
    if channel == "wechat":
        return wechat.parse(stream, expected_sha1)
    if channel == "bank":
        return bank.parse(stream)
    raise ValueError(f"no statement parser for channel {channel!r}")
