"""docs/configuration.md lists every setting the code reads (issue 19): each field of `Settings` as its
`TOMATO_` variable in the table of settings, and nothing in that table that is not a setting."""

from __future__ import annotations

import re
from dataclasses import MISSING
from pathlib import Path

from tomato.core.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def documented() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("<!-- settings -->") :].split("\n\n", 1)[0]
    return dict(re.findall(r"^\| `(TOMATO_[A-Z0-9_]+)` \| ([^|]+) \|", table, flags=re.M))


def test_every_setting_is_in_the_table_and_every_row_is_a_setting() -> None:
    rows = documented()
    fields = {f"TOMATO_{name.upper()}" for name in Settings.model_fields}
    assert not fields - rows.keys(), f"settings missing from docs/configuration.md: {sorted(fields - rows.keys())}"
    assert not rows.keys() - fields - {"TOMATO_CONFIG_FILE"}, sorted(rows.keys() - fields)


def test_each_documented_default_is_the_default() -> None:
    rows = documented()
    for name, field in Settings.model_fields.items():
        default = rows[f"TOMATO_{name.upper()}"].strip()
        if field.default in (None, "") or not default.startswith("`"):
            continue  # "(none: …)" or a derived default, described in words
        shown = default.strip("`")
        value = field.default
        expected = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        assert shown == expected, f"TOMATO_{name.upper()}: the doc says {shown}, the code {expected}"


CHANNELS = Path(__file__).resolve().parents[2] / "docs" / "channels.md"


def test_every_config_key_of_every_channel_is_in_its_table() -> None:
    """The keys each adapter's `parse_config` reads (its config dataclass) are the rows of the channel's table."""
    from dataclasses import fields

    from tomato.channel.adapters.alipay.adapter import AlipayConfig
    from tomato.channel.adapters.bank.config import BankConfig
    from tomato.channel.adapters.wechat.config import WechatConfig

    text = CHANNELS.read_text(encoding="utf-8")
    for channel, config in (("alipay", AlipayConfig), ("wechat", WechatConfig), ("bank", BankConfig)):
        section = text[text.index(f"**`{channel}`**") :].split("\n\n", 2)[1]
        rows = re.findall(r"^\| `(\w+)` \| (yes|no) \|", section, flags=re.M)
        keys = {f.name: "no" if f.default is not MISSING else "yes" for f in fields(config)}
        assert dict(rows) == keys, channel
