"""Issue 16: the bank codec reads times and dates with ASCII digits only. `str.isdigit()` passes '²' and full-width
or Arabic-Indic digits (which `int()` and `strptime` partly read), so a notify with one in a time field was read as
a date, or refused with the wrong reason; now it is refused as malformed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tomato.channel.adapters.bank import codec

NOT_ASCII = ["²", "\uff11", "\u0663", "\u09e7"]  # superscript two, full-width 1, Arabic-Indic 3, Bengali 1


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_txn_time_with_a_non_ascii_digit_is_malformed(digit: str) -> None:
    with pytest.raises(ValueError, match="not a yyyyMMddHHmmss time"):
        codec.parse_time("2024010109550" + digit)


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_trace_time_with_a_non_ascii_digit_is_malformed(digit: str) -> None:
    txn = datetime(2024, 1, 1, 1, 55, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a MMddHHmmss time"):
        codec.parse_trace_time("010109551" + digit, txn)
    with pytest.raises(ValueError, match="not a MMddHHmmss time"):
        codec.parse_trace_time(digit * 10, txn)


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_settle_date_with_non_ascii_digits_is_none(digit: str) -> None:
    assert codec.resolve_settle_date(digit * 4, date(2026, 12, 6)) is None
    assert codec.resolve_settle_date("120" + digit, date(2026, 12, 6)) is None
    assert codec.resolve_settle_date("\uff11\uff12\uff10\uff16", date(2026, 12, 6)) is None  # full-width 1206


def test_ascii_still_parses() -> None:
    assert codec.parse_time("20240101095500") == datetime(2024, 1, 1, 1, 55, tzinfo=UTC)
    assert codec.resolve_settle_date("1206", date(2026, 12, 6)) == date(2026, 12, 6)
