"""The statement interface reconciliation matches against: normalised lines from any channel's file.

`parse_statement(channel, stream)` streams: bounded memory whatever the file size, every malformed row yielded as a
`MalformedRow` with its line number (never skipped), a file failing its hash or structure refused whole with
`StatementRejected` — possibly after lines were yielded, so a consumer discards what it got from such a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from tomato.reconciliation.parsers import alipay, bank, wechat
from tomato.reconciliation.parsers.lines import (
    LineKind,
    MalformedRow,
    Parsed,
    Record,
    StatementLine,
    StatementRejected,
    staging_row,
)

__all__ = ["CHANNELS", "LineKind", "MalformedRow", "Parsed", "Record", "Statement", "StatementLine",
           "StatementRejected", "parse_statement", "staging_row"]  # fmt: skip

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


class Statement:
    """A statement file to be parsed, as a statement source hands it to a run: iterating it gives the normalised
    lines (`parse_statement`); `records(batch_id)` gives the staging rows the loader copies into `recon_lines`
    (`staging_row` of each line, a `MalformedRow` as is) — for WeChat straight from the parser's fast path,
    without an object per line. Each iteration opens the file anew through `opener`."""

    def __init__(
        self,
        channel: str,
        opener: Callable[[], AbstractContextManager[BinaryIO]],
        *,
        expected_sha1: str | None = None,
    ) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"no statement parser for channel {channel!r}")
        self.channel = channel
        self._opener = opener
        self._sha1 = expected_sha1

    def __iter__(self) -> Iterator[StatementLine | MalformedRow]:
        with self._opener() as stream:
            yield from parse_statement(self.channel, stream, expected_sha1=self._sha1)

    def records(self, batch_id: str, *, copy_text: bool = False) -> Iterator[list[Record] | bytes | MalformedRow]:
        """Lists of staging rows of `batch_id`, and the malformed rows, in file order; with `copy_text` some rows
        may come as PostgreSQL COPY text instead (`wechat.records`)."""
        with self._opener() as stream:
            if self.channel == "wechat":
                yield from wechat.records(stream, batch_id, self._sha1, copy_text=copy_text)
                return
            rows: list[Record] = []
            for line in parse_statement(self.channel, stream, expected_sha1=self._sha1):
                if isinstance(line, MalformedRow):
                    yield line
                    continue
                rows.append(staging_row(batch_id, line))
                if len(rows) >= wechat.RECORDS_CHUNK:
                    yield rows
                    rows = []
            if rows:
                yield rows
