"""Issue 19, the console's pure parts: language choice, the catalogues, the session seal, CSRF comparison, CSV cells,
money formatting and the SVG charts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tomato.core.crypto import SecretBox
from tomato.gateway.console import charts, csrf, i18n, session
from tomato.gateway.console.csv_export import cell, csv_bytes
from tomato.gateway.console.render import money

CONSOLE = Path(i18n.__file__).parent
NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("header", "cookie", "lang"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en-US,en;q=0.9,zh;q=0.8", None, "en"),
        ("fr-FR,fr;q=0.9,zh-TW;q=0.5", None, "zh"),  # the best language we have
        ("zh;q=0.2,en;q=0.7", None, "en"),  # weights, not order
        ("zh;q=0, en", None, "en"),  # q=0 means "not this"
        ("de", None, "en"),
        (None, None, "en"),
        ("zh-CN", "en", "en"),  # the switch overrides the header
        ("en", "zh", "zh"),
        ("zh-CN", "xx", "zh"),  # an unknown cookie value is ignored
    ],
)
def test_language_choice(header: str | None, cookie: str | None, lang: str) -> None:
    assert i18n.pick(header, cookie) == lang


def test_catalogues_have_the_same_keys_and_every_key_the_pages_use() -> None:
    en, zh = i18n.catalogue("en"), i18n.catalogue("zh")
    assert set(en) == set(zh)
    assert all(zh[k] for k in zh)
    used = set()
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.rglob("*.svg"), *CONSOLE.glob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[A-Za-z_.-]+)["']""", path.read_text(encoding="utf-8")))
    assert used and used <= set(en), sorted(used - set(en))
    assert i18n.Translator("zh")("error.role", roles="operator") == "此页面需要operator角色。"
    assert i18n.Translator("en")("no.such.key") == "no.such.key"


def _box(ring: str | None = None) -> SecretBox:
    return SecretBox.from_ring(ring or SecretBox.generate_ring("k1"))


def test_the_session_seal_refuses_tampering_other_keys_and_age() -> None:
    ring = SecretBox.generate_ring("k1")
    box = _box(ring)
    s = session.new_session("tok-secret", NOW)
    sealed = session.seal(box, s)
    assert "tok-secret" not in sealed and re.fullmatch(r"[A-Za-z0-9_-]+", sealed)
    assert session.unseal(box, sealed, NOW + 60) == s
    for i in (0, 5, len(sealed) // 2, len(sealed) - 3):  # the last character may carry only padding bits
        tampered = sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1 :]
        assert session.unseal(box, tampered, NOW) is None
    assert session.unseal(_box(), sealed, NOW) is None  # another key ring
    assert session.unseal(box, sealed, NOW + session.MAX_AGE_S + 1) is None
    assert session.unseal(box, sealed, NOW - 10) is None  # issued in the future
    assert session.unseal(box, box.encrypt('{"t":"x","c":"y","i":1}'), NOW) is None  # another use of the key
    assert session.unseal(box, "", NOW) is None and session.unseal(box, "x" * 5000, NOW) is None
    rotated = _box(f"{SecretBox.generate_ring('k2')},{ring}")
    assert session.unseal(rotated, sealed, NOW) == s  # a rotated ring still opens sessions sealed before


def test_csrf_needs_the_sessions_own_token() -> None:
    s = session.new_session(None, NOW)
    assert csrf.valid(s, s.csrf)
    assert not csrf.valid(s, None) and not csrf.valid(s, "") and not csrf.valid(s, s.csrf[:-1] + "x")
    assert not csrf.valid(None, s.csrf)
    assert session.new_session("t", NOW).csrf != s.csrf  # every session gets its own


def test_csv_cells_never_run_as_formulas() -> None:
    assert [cell(v) for v in ("=SUM(A1)", "+1", "-2", "@x", "plain", None, -150, 0)] == [
        "'=SUM(A1)", "'+1", "'-2", "'@x", "plain", "", "-150", "0"
    ]  # fmt: skip
    body = csv_bytes(("a", "b"), [("中文", "=1+1")])
    assert body.startswith("\ufeff".encode()) and body.decode("utf-8-sig") == "a,b\r\n中文,'=1+1\r\n"


def test_money_is_read_from_integer_fen() -> None:
    assert [money(v) for v in (0, 1, 1234, 100_000_00, -250, None)] == [
        "¥0.00", "¥0.01", "¥12.34", "¥100,000.00", "-¥2.50", "—"
    ]  # fmt: skip


def test_bar_chart_heights_are_proportional_and_empty_hours_draw_nothing() -> None:
    chart = charts.bar_chart("t", ["00", "01", "02"], [("alipay", [100, 0, 50]), ("wechat", [25, 0, 0])])
    assert not chart.empty and len(chart.bars) == 3
    heights = {b.title: b.height for b in chart.bars}
    top = charts.nice_ceiling(100)
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert heights["alipay · 00: 100"] == round(plot * 100 / top, 2)
    assert heights["alipay · 02: 50"] == pytest.approx(heights["alipay · 00: 100"] / 2, abs=0.01)
    assert heights["wechat · 00: 25"] == pytest.approx(heights["alipay · 00: 100"] / 4, abs=0.01)
    assert all(b.y + b.height == pytest.approx(charts.HEIGHT - charts.BOTTOM) for b in chart.bars)
    assert [b.fill for b in chart.bars] == [charts.PALETTE[0], charts.PALETTE[0], charts.PALETTE[1]]
    assert charts.bar_chart("t", ["00"], [("a", [0])]).empty


def test_count_charts_have_whole_ticks() -> None:
    one = charts.bar_chart("t", ["a", "b"], [("n", [1, 0])], counts=True)
    assert [lb.text for lb in one.y_labels] == ["0", "1", "2", "3", "4"]
    seven = charts.bar_chart("t", ["a"], [("n", [7])], counts=True)
    assert [lb.text for lb in seven.y_labels] == ["0", "3", "6", "9", "12"]


@pytest.mark.parametrize(("value", "ceiling"), [(1, 1), (7, 10), (101, 200), (230, 250), (0.3, 0.5), (0, 1)])
def test_axes_end_on_round_numbers(value: float, ceiling: float) -> None:
    assert charts.nice_ceiling(value) == pytest.approx(ceiling)


def test_line_chart_leaves_gaps_for_hours_without_orders() -> None:
    chart = charts.line_chart("rate", ["0", "1", "2", "3", "4"], [("bank", [1.0, 0.5, None, 0.25, None])])
    assert len(chart.lines) == 1 and len(chart.dots) == 1  # a run of two points, then a lone one
    first, second = chart.lines[0].points.split()
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert float(first.split(",")[1]) == pytest.approx(charts.TOP)  # 100 % at the top
    assert float(second.split(",")[1]) == pytest.approx(charts.TOP + plot / 2)
    assert charts.line_chart("rate", ["0"], [("bank", [None])]).empty


def test_rendered_svg_escapes_labels_and_has_no_script_or_inline_style() -> None:
    chart = charts.bar_chart("<b>volume</b>", ["<x>"], [('a"><script>alert(1)</script>', [5])])
    svg = str(charts.render(chart, "none"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;volume" in svg
    assert "style=" not in svg  # the CSP allows no inline style
    assert svg.count('<rect class="bar"') == 1 and "<svg" in svg
    empty = str(charts.render(charts.bar_chart("v", [], []), "No data yet"))
    assert "No data yet" in empty and 'class="bar"' not in empty


def test_portal_catalogues_have_the_same_keys_and_every_key_the_portal_uses() -> None:
    from tomato.gateway.portal import render as portal

    en = {**i18n.catalogue("en"), **portal.catalogue("en")}
    zh = {**i18n.catalogue("zh"), **portal.catalogue("zh")}
    assert set(portal.catalogue("en")) == set(portal.catalogue("zh")) and all(zh.values())
    used = set()
    root = Path(portal.__file__).parent
    for path in [*root.rglob("*.html"), *root.glob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[A-Za-z_.-]+)["']""", path.read_text(encoding="utf-8")))
    used = {k for k in used if not k.endswith(".")}  # `t("portal.role." ~ role)`: a family of keys
    assert used and used <= set(en), sorted(used - set(en))
    assert i18n.Translator("zh", portal.catalogue)("portal.role.owner") == "所有者"
