"""Rendering for the portal: its own templates first, then the console's (macros, charts, error page), and its
own strings over the console's in both languages (locales/<lang>/*.json, one file per area of the portal)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tomato.gateway.console import i18n
from tomato.gateway.console.render import build_environment, render_page

TEMPLATES = Path(__file__).parent / "templates"
LOCALES = Path(__file__).parent / "locales"
ENV = build_environment(TEMPLATES)


@cache
def catalogue(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((LOCALES / lang).glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def set_language(request: Request) -> None:
    lang = i18n.pick(request.headers.get("accept-language"), request.cookies.get(i18n.COOKIE))
    request.state.lang = lang
    request.state.t = i18n.Translator(lang, catalogue)
    request.state.render = html  # the shared error pages render in the portal's frame


def html(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return render_page(ENV, request, template, status, **context)
