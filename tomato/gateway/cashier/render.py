"""Rendering the cashier page: Jinja2 templates (autoescaped), one CSP nonce per response, the security headers.

Every response carries a strict CSP (only this page's nonce'd inline script and style), `X-Frame-Options: DENY`,
`Referrer-Policy: no-referrer`, `Cache-Control: no-store` and `nosniff`; it says which language it speaks
(`Content-Language`, and `Vary: Accept-Language` since the header chose it).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import qrcode
import qrcode.image.svg
from fastapi.responses import Response

from tomato.gateway.cashier.texts import TEXTS, state_labels
from tomato.gateway.languages import EN, HTML_LANG, ZH

POLL_MS = 1500
JSAPI_FIELDS = ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign")


@cache
def environment() -> jinja2.Environment:
    """Built on first use, not at import; StrictUndefined turns a missing text or value into an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tomato.gateway", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def format_yuan(fen: int) -> str:
    """Integer fen → "1,234.56" without floats."""
    yuan, cents = divmod(fen, 100)
    return f"{yuan:,}.{cents:02d}"


def qr_svg(data: str) -> str:
    """The QR code of `data` as an inline SVG string (no image libraries); `data` is only in the drawn modules."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = image.to_string(encoding="unicode")
    assert isinstance(svg, str)
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)  # sized by the page's CSS


def http_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with a host, else None: the only links the page follows or shows."""
    if not url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.hostname else None


@dataclass(frozen=True)
class CashierPage:
    """One response: its nonce, its language and the query it was asked with (for the page's own links)."""

    nonce: str
    lang: str
    query: tuple[tuple[str, str], ...] = ()
    switched: bool = False  # `?lang=` chose the language: the page's own links and forms keep it

    @classmethod
    def new(cls, lang: str, query: Iterable[tuple[str, str]] = (), *, switched: bool = False) -> CashierPage:
        return cls(secrets.token_urlsafe(18), lang, tuple(query), switched)

    def link(self, **params: str) -> str:
        """A link to this page with `params` (and the language, when the payer switched it)."""
        if self.switched:
            params["lang"] = self.lang
        return "?" + urlencode(params)

    def switch_link(self) -> str:
        """This page as asked, in the other language."""
        kept = [(k, v) for k, v in self.query if k != "lang"]
        return "?" + urlencode([*kept, ("lang", EN if self.lang == ZH else ZH)])

    def headers(self) -> dict[str, str]:
        csp = (
            f"default-src 'none'; script-src 'nonce-{self.nonce}'; style-src 'nonce-{self.nonce}'; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
        return {
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Language": HTML_LANG[self.lang],
            "Vary": "Accept-Language",
        }

    def html(self, template: str, *, title: str, state: str = "waiting", **context: Any) -> str:
        texts = TEXTS[self.lang]
        return (
            environment()
            .get_template(f"cashier/{template}")
            .render(
                page=self,
                t=texts,
                html_lang=HTML_LANG[self.lang],
                title=title,
                state=state,
                labels=state_labels(self.lang),
                poll_ms=POLL_MS,
                **context,
            )
        )

    def render(self, template: str, *, title: str, state: str = "waiting", status: int = 200, **ctx: Any) -> Response:
        document = self.html(template, title=title, state=state, **ctx)
        return Response(document, status_code=status, media_type="text/html; charset=utf-8", headers=self.headers())

    def redirect(self, url: str) -> Response:
        """A 302 to a wallet's page (an http(s) URL), with a link to it for clients that do not follow."""
        label = TEXTS[self.lang]["to_alipay"]
        response = self.render("redirect.html", title=label, status=302, url=url)
        response.headers["Location"] = url
        return response
