"""WeChat bill blocks of plain payment rows turned into PostgreSQL `COPY` text with no Python step per row.

A bill is mostly payment rows written the same way: every cell backticked, no spaces around values, amounts with
two decimals, the refund column `0.00`. One regular expression, built from the file's column header, finds those
rows' cells (`findall`, in C); when it finds every line of a block, the block's staging rows are assembled column by
column with `map`, `zip` and `str.join` (in C too) as COPY text, and PostgreSQL converts the text on its own core
while the parser reads on. A block with any other line — a refund, an error, an odd layout — returns None and takes
the parser's general path, which words every error: this module only accepts what that path would accept with the
same result (fen amounts, the China time as `…+08`, ids as read).
"""

from __future__ import annotations

import re
from datetime import date
from itertools import repeat
from operator import itemgetter

_ID = r"[^\s,\\\x00]{1,64}"  # no space, comma, backslash or NUL: nothing COPY text would need escaped
_YUAN = r"[0-9]{1,16}\.[0-9]{2}"
_TIME = r"[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]) (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_OTHER = r"[^,\n]*"
_DAY = itemgetter(slice(0, 10))


class CopyBlocks:
    """The COPY text of blocks of plain payment rows, for one bill's column `header`."""

    def __init__(self, header: list[str], batch_id: str) -> None:
        col = {name: n for n, name in enumerate(header)}  # the last of a repeated name, as the general path
        settled, total = col["应结订单金额"], col["订单金额"]
        first_amount, second_amount = min(settled, total), max(settled, total)
        cells = {
            col["交易时间"]: f"(?P<time>{_TIME})",
            col["微信订单号"]: f"(?P<trade>{_ID})",
            col["商户订单号"]: f"(?P<order>{_ID})",
            col["交易状态"]: r"(?!REFUND(?:,|$))(?P<state>[^\s,\\\x00]{1,32})",
            col["退款金额"]: r"0\.00",
            col["手续费"]: r"(?P<fee_yuan>[0-9]{1,16})\.(?P<fee_cents>[0-9]{2})0{0,3}",
            # the settled and the order amount are one value: the second is a back-reference to the first
            first_amount: r"(?P<yuan>[0-9]{1,16})\.(?P<cents>[0-9]{2})",
            second_amount: r"(?P=yuan)\.(?P=cents)",
        }
        if len(cells) != 8:  # two names on one column: not a layout this path knows
            self._pattern = None
            return
        line = ",".join("`" + cells.get(n, _OTHER) for n in range(len(header)))
        self._pattern = re.compile(f"^{line}\r?$", re.MULTILINE)  # lines end in "\r\n" or "\n"
        names = ("time", "trade", "order", "state", "yuan", "cents", "fee_yuan", "fee_cents")
        self._columns = itemgetter(*(self._pattern.groupindex[name] - 1 for name in names))
        self._batch = batch_id
        self._days: set[str] = set()

    def convert(self, text: str, first_line: int, lines: int) -> tuple[bytes, int, int] | None:
        """(COPY text of the block's rows, their settled total, their fee total), or None when not every one of
        the block's `lines` lines (numbered from `first_line`, ending in "\\r\\n" or "\\n") is a plain payment row."""
        if self._pattern is None:
            return None
        found = self._pattern.findall(text)
        if len(found) != lines or lines == 0:
            return None
        columns: tuple[tuple[str, ...], ...] = self._columns(tuple(zip(*found, strict=True)))
        when, trade, order, state, yuan, cents, fee_yuan, fee_cents = columns
        amounts = list(map(str.__add__, yuan, cents))
        values = list(map(int, amounts))
        if min(values) <= 0 or not self._real_days(when):
            return None
        fees = list(map(str.__add__, fee_yuan, fee_cents))
        stamps = map(str.__add__, when, repeat("+08"))
        numbers = map(str, range(first_line, first_line + lines))
        rows = zip(repeat(self._batch), numbers, repeat("PAYMENT"), order, order, trade, amounts, fees, state, stamps)
        copy = "\n".join(map("\t".join, rows)) + "\n"
        return copy.encode(), sum(values), sum(map(int, fees))

    def _real_days(self, when: tuple[str, ...]) -> bool:
        """Every date is a real one (the pattern lets 02-30 through); the few distinct days are checked once."""
        for day in set(map(_DAY, when)) - self._days:
            try:
                date.fromisoformat(day)
            except ValueError:
                return False
            self._days.add(day)
        return True
