"""Which of our languages a browser gets: an explicit `?lang=` switch, else its `Accept-Language` (RFC 9110 §12.5.4).

Pages for people (the cashier, the console) speak Simplified Chinese unless the browser prefers English. The header
is read with its q-values: `en-US,en;q=0.9` is English, `en;q=0.5,zh;q=0.8` Chinese, `zh;q=0,en` English; a range
with a malformed q-value is skipped rather than guessed at, and `*` stands for the default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ZH, EN = "zh", "en"
SUPPORTED = (ZH, EN)
DEFAULT = ZH
HTML_LANG = {ZH: "zh-CN", EN: "en"}  # the `lang` attribute and Content-Language of each

_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_QVALUE = re.compile(r"^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$")
_MAX_HEADER = 1024  # longer headers are not from a browser; only their start is read
_MAX_RANGES = 32


def parse_accept_language(header: str) -> list[tuple[str, float]]:
    """The language ranges of a header with their weights, best first (ties keep the header's order)."""
    ranges: list[tuple[str, float]] = []
    for item in header[:_MAX_HEADER].split(",")[:_MAX_RANGES]:
        tag, *params = (part.strip() for part in item.split(";"))
        if not _RANGE.match(tag):
            continue
        weight: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.match(value) else None
        if weight is not None:
            ranges.append((tag.lower(), weight))
    return sorted(ranges, key=lambda pair: -pair[1])  # sorted() is stable


def negotiate(header: str, supported: Sequence[str] = SUPPORTED, default: str = DEFAULT) -> str:
    """The supported language the header weighs highest; `default` when it names none of them."""
    ranges = parse_accept_language(header)
    refused = {tag.split("-")[0] for tag, weight in ranges if weight == 0}
    for tag, weight in ranges:
        if weight == 0:
            break  # sorted: the rest are refused too
        primary = tag.split("-")[0]
        if primary in supported:
            return primary
        if primary == "*":
            return next((lang for lang in (default, *supported) if lang not in refused), default)
    return default


def override(value: str | None, supported: Sequence[str] = SUPPORTED) -> str | None:
    """The language a `?lang=` switch names (`en`, `zh`, `zh-CN`, `en-GB`, …), or None for anything else."""
    if not value or not _RANGE.match(value) or value == "*":
        return None
    primary = value.split("-")[0].lower()
    return primary if primary in supported else None


def choose(query_lang: str | None, accept_language: str) -> str:
    """The page's language: the switch when it names one of ours, else the header, else Chinese."""
    return override(query_lang) or negotiate(accept_language)
