"""The cashier page's languages and templates without a server: Accept-Language with its q-values, the `?lang=`
switch, both catalogs complete, the links the page may show, and every template rendering in both languages."""

from __future__ import annotations

import re

import pytest

from tomato.gateway import languages
from tomato.gateway.cashier.render import CashierPage, environment, format_yuan, http_url
from tomato.gateway.cashier.states import detect_wallet
from tomato.gateway.cashier.texts import STATES, TEXTS, state_labels


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "zh"),
        ("en-US,en;q=0.9", "en"),
        ("en", "en"),
        ("EN-gb", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("zh-TW", "zh"),
        ("en;q=0.5, zh;q=0.8", "zh"),
        ("zh;q=0.5, en;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.7", "en"),  # the first one we speak
        ("fr-FR,de;q=0.9", "zh"),  # none we speak: the default
        ("zh;q=0, en", "en"),
        ("zh;q=0", "zh"),  # refuses Chinese but asks for nothing else: a page is better than none
        ("*", "zh"),
        ("zh;q=0, *;q=0.5", "en"),  # anything but Chinese
        ("en;q=1.0, zh;q=1", "en"),  # a tie keeps the header's order
        ("en;q=2, zh;q=0.1", "zh"),  # q above 1 is malformed: that range is skipped
        ("en;q=0.1234, zh;q=0.1", "zh"),  # more than three decimals: malformed
        ("en;q=abc", "zh"),
        ("en;q=", "zh"),
        ("<script>, en;q=0.5", "en"),
        ("en-US;q=0.9;level=1", "en"),
        (",,;, en", "en"),
    ],
)
def test_accept_language_is_read_with_its_q_values(header: str, expected: str) -> None:
    assert languages.negotiate(header) == expected


def test_ranges_come_best_first_and_oversized_headers_are_cut() -> None:
    assert languages.parse_accept_language("da, en-gb;q=0.8, en;q=0.7") == [("da", 1.0), ("en-gb", 0.8), ("en", 0.7)]
    assert languages.parse_accept_language("en;q=0.1, zh;q=0.9, fr") == [("fr", 1.0), ("zh", 0.9), ("en", 0.1)]
    huge = ",".join(["fr"] * 5000) + ",en"
    assert languages.negotiate(huge) == "zh" and len(languages.parse_accept_language(huge)) <= 32


def test_the_switch_names_one_of_our_languages_or_nothing() -> None:
    named = ("en", "EN", "en-GB", "zh", "zh-CN", "zh-Hans-CN")
    assert [languages.override(v) for v in named] == ["en", "en", "en", "zh", "zh", "zh"]
    for junk in (None, "", "fr", "*", "e n", "en;q=1", "<b>", "x" * 40):
        assert languages.override(junk) is None, junk
    assert languages.choose("en", "zh-CN") == "en" and languages.choose("zh", "en-US,en;q=0.9") == "zh"
    assert languages.choose("fr", "en-US,en;q=0.9") == "en" and languages.choose(None, "") == "zh"


def test_both_catalogs_say_everything() -> None:
    assert set(TEXTS) == {"zh", "en"}
    assert TEXTS["zh"].keys() == TEXTS["en"].keys()
    for lang, texts in TEXTS.items():
        assert all(v.strip() for v in texts.values()), lang
        assert set(state_labels(lang)) == set(STATES)
    assert re.search(r"[\u4e00-\u9fff]", TEXTS["zh"]["state_paid"]) and TEXTS["en"]["state_paid"].isascii()


def test_only_http_links_are_followed_or_shown() -> None:
    assert http_url("https://shop.example/back?a=1&b=2") == "https://shop.example/back?a=1&b=2"
    assert http_url("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
    bad_links = (
        None,
        "",
        "javascript:alert(1)",
        "data:text/html,x",
        "//shop.example/x",
        "/relative",
        "https://",
        "ftp://shop.example/x",
        "https://shop.example/\nx",
        "https://shop .example/",
        "https://[::1/",
    )
    for bad in bad_links:
        assert http_url(bad) is None, bad


def test_every_template_renders_in_both_languages_and_escapes() -> None:
    """Each page with hostile values: nothing of them survives unescaped, and StrictUndefined finds no gap."""
    evil = "<img src=x onerror=alert(1)>'\""
    order = {"subject": evil, "order_no": "P1"}
    common = {
        "order": order,
        "amount": format_yuan(123456),
        "merchant_name": evil,
        "status_url": "/cashier/t/status",
        "return_url": "https://shop.example/?q=" + evil,
        "sandbox": True,
    }
    pages = {
        "order.html": {"qr": None},
        "openid.html": {"invalid": True},
        "jsapi.html": {"params": {"appId": evil, "paySign": "</script><script>alert(1)</script>"}},
        "started.html": {},
        "redirect.html": {"url": "https://openapi.alipay.com/?a=1&b=" + evil},
        "message.html": {"code": evil, "text": evil, "reference": evil},
    }
    for lang in ("zh", "en"):
        page = CashierPage.new(lang, [("wallet", evil)], switched=True)
        for name, extra in pages.items():
            for state in STATES:
                text = page.html(name, title=evil, state=state, **common, **extra)
                assert "<img" not in text and "<script>alert" not in text, (lang, name)
                assert f"<html lang='{languages.HTML_LANG[lang]}'>" in text
                assert text.count(f"nonce='{page.nonce}'") == 2  # the style and the one executable script
    assert environment().undefined.__name__ == "StrictUndefined"


def test_links_keep_a_switched_language() -> None:
    assert CashierPage.new("en").link(wallet="alipay") == "?wallet=alipay"
    assert CashierPage.new("en", switched=True).link(wallet="alipay") == "?wallet=alipay&lang=en"
    page = CashierPage.new("zh", [("wallet", "wechat"), ("openid", "o 1"), ("lang", "zh")], switched=True)
    assert page.switch_link() == "?wallet=wechat&openid=o+1&lang=en"
    assert CashierPage.new("zh").nonce != CashierPage.new("zh").nonce


def test_wallet_detection_and_amounts() -> None:
    assert detect_wallet("Mozilla/5.0 AlipayClient/10.5") == "alipay"
    assert detect_wallet("Mozilla/5.0 MicroMessenger/8.0") == "wechat"
    assert detect_wallet("Mozilla/5.0 Safari") is None
    assert format_yuan(1) == "0.01" and format_yuan(123456) == "1,234.56"
