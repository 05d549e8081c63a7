"""Chinese and English: `Accept-Language` picks, the language switch (a cookie) overrides.

Every string a page shows lives in one catalogue per language (locales/en.json, locales/zh.json); templates call
`t("key")`. A key missing from one language falls back to English, then to the key itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

LANGS = ("zh", "en")
DEFAULT = "en"
COOKIE = "tomato_console_lang"
_DIR = Path(__file__).parent / "locales"


@cache
def catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def _ranked(header: str) -> list[tuple[float, int, str]]:
    ranked = []
    for i, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().lower()))
    return sorted(ranked)


def pick(accept_language: str | None, chosen: str | None) -> str:
    """The switch's cookie when it names a language we have; else the best `Accept-Language` match; else English."""
    if chosen in LANGS:
        return str(chosen)
    for _, _, tag in _ranked(accept_language or ""):
        primary = tag.split("-")[0]
        if primary in LANGS:
            return primary
    return DEFAULT


class Translator:
    """`extra` is a catalogue function whose entries win (the portal's strings over the console's)."""

    def __init__(self, lang: str, extra: Callable[[str], dict[str, str]] | None = None) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self._own = catalogue(self.lang) if extra is None else {**catalogue(self.lang), **extra(self.lang)}
        self._fallback = catalogue(DEFAULT) if extra is None else {**catalogue(DEFAULT), **extra(DEFAULT)}

    def __call__(self, key: str, **values: Any) -> str:
        text = self._own.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text
