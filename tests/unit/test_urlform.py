"""core.urlform encodes exactly as urllib.parse.urlencode: every byte value, non-ASCII text, signatures and JSON."""

from __future__ import annotations

import random
import urllib.parse

import pytest

from tomato.core import urlform


def test_every_code_point_below_0x800_is_quoted_as_urllib_quotes_it() -> None:
    text = "".join(chr(c) for c in range(0x800) if not 0xD800 <= c < 0xE000)
    assert urlform.quote_plus(text) == urllib.parse.quote_plus(text, safe="")


def test_random_pairs_encode_as_urllib_encodes_them() -> None:
    rng = random.Random(24)
    alphabet = "aZ09_.-~ +/=&?%#\"{}:,\n\t中文€😀\x00\x7f"
    for _ in range(500):
        params = {
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))): "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 40))
            )
            for _ in range(rng.randint(0, 6))
        }
        assert urlform.urlencode(params) == urllib.parse.urlencode(params)


def test_a_signed_alipay_style_form_encodes_as_urllib_encodes_it() -> None:
    params = {
        "app_id": "2021000000000000", "method": "alipay.trade.precreate", "charset": "utf-8",
        "timestamp": "2026-12-06 23:10:00",
        "biz_content": '{"out_trade_no":"P1","total_amount":"12.34","subject":"咖啡"}',
        "sign": "Kx+/Zm9v" * 43, "notify_url": "https://pay.example.com/callbacks/alipay/CA1?x=1&y=2",
    }  # fmt: skip
    assert urlform.urlencode(params) == urllib.parse.urlencode(params)


def test_a_lone_surrogate_is_refused_as_urllib_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        urllib.parse.quote_plus("\ud800", safe="")
    with pytest.raises(UnicodeEncodeError):
        urlform.quote_plus("\ud800")
