"""The hosted cashier `/cashier/{token}` of CASHIER orders (docs/api.md): the routes; the page is rendered by
`gateway/cashier/` from the Jinja2 templates in `gateway/templates/cashier/`.

The page shows the merchant's name, the amount, the subject and a QR of its own URL. Opened by the Alipay app
(User-Agent `AlipayClient`) it precreates the Alipay trade (so it exists at the channel at once) and redirects the app
to Alipay's pay link for it; opened by WeChat (`MicroMessenger`, with `?openid=…`) it starts the JSAPI attempt; anywhere
else it offers the wallets (`?wallet=alipay` redirects to Alipay's WAP page). A nonce'd inline script polls
`/cashier/{token}/status` and shows paid (with a link back to the order's `return_url`), closed, expired or failed.

It speaks Simplified Chinese unless `Accept-Language` prefers English; `?lang=` overrides both. The simulator's helper
fields (an openid box, the raw JSAPI parameters, `/sandbox/scan` hints) appear only with the
`cashier_sandbox_hints` setting, which `tomato dev` turns on. Errors become a friendly page with the error code,
never a stack trace.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from tomato.bootstrap import Container
from tomato.core.errors import TomatoError
from tomato.gateway import languages
from tomato.gateway.cashier.render import JSAPI_FIELDS, CashierPage, format_yuan, http_url, qr_svg
from tomato.gateway.cashier.states import WALLETS, detect_wallet, display_state
from tomato.gateway.cashier.texts import FRIENDLY_CODES, TEXTS
from tomato.gateway.deps import container
from tomato.gateway.errors import request_id
from tomato.pay.errors import OrderNotFound
from tomato.pay.schemas import CashierOrderView, PayOrderView

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cashier", tags=["cashier"], include_in_schema=False)

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_OPENID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, as WeChat openids are


@router.get("/{token}")
async def cashier_page(token: str, request: Request) -> Response:
    """The payer's page: wallet flows by User-Agent (or `?wallet=`), the choices otherwise."""
    page = _page(request)
    if not _TOKEN.match(token):
        return _not_found(page)
    c = container(request)
    try:
        found = await c.pay.cashier_view(token)
        merchant = await c.merchants.get_merchant(found.mch_no)
    except OrderNotFound:
        return _not_found(page)
    except Exception as exc:
        return _error(page, request, exc)
    show = _Show(page, c, found, merchant.name)
    order = found.order
    in_app = detect_wallet(request.headers.get("user-agent", ""))
    wallet = in_app or _query_wallet(request)
    if wallet is None or display_state(order, c.clock.now()) != "waiting":
        return show("order.html", order, qr=_qr(order))
    openid = request.query_params.get("openid", "").strip() or None
    if wallet == "wechat" and (openid is None or not _OPENID.match(openid)):
        return show("openid.html", order, invalid=openid is not None)
    try:
        started = await c.pay.start_cashier(
            token, wallet, openid if wallet == "wechat" else None, in_app=in_app is not None
        )
    except OrderNotFound:
        return _not_found(page)
    except Exception as exc:
        return _error(page, request, exc)
    order, data = started.order, started.wallet_pay_data
    if display_state(order, c.clock.now()) == "waiting" and data is not None:
        value = data.get("value")
        alipay_link = data.get("type") in ("redirect_url", "qr_code")  # a page-pay request or the app's pay link
        if wallet == "alipay" and alipay_link and isinstance(value, str) and http_url(value):
            return page.redirect(value)
        if wallet == "wechat" and data.get("type") == "jsapi" and isinstance(value, dict):
            params = {k: str(value.get(k, "")) for k in JSAPI_FIELDS}
            return show("jsapi.html", order, params=params)
    return show("started.html", order)


@router.get("/{token}/status")
async def cashier_status(token: str, request: Request) -> JSONResponse:
    """`{status, state, paid_at}` for the page's poller; `state` is what the page shows."""
    if not _TOKEN.match(token):
        raise OrderNotFound("unknown cashier link")
    c = container(request)
    order = await c.pay.cashier_order(token)
    body = {"status": order.status, "state": display_state(order, c.clock.now()), "paid_at": order.paid_at}
    return JSONResponse(body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


class _Show:
    """Renders one of the order's pages with what every one of them shows (merchant, amount, status, return link)."""

    def __init__(self, page: CashierPage, c: Container, found: CashierOrderView, merchant_name: str) -> None:
        self.page, self.c, self.merchant_name = page, c, merchant_name
        self.return_url = http_url(found.return_url)

    def __call__(self, template: str, order: PayOrderView, **context: Any) -> Response:
        state = display_state(order, self.c.clock.now())
        return self.page.render(
            template,
            title=order.subject,
            state=state,
            order=order,
            amount=format_yuan(order.amount),
            merchant_name=self.merchant_name,
            status_url=_status_url(order),
            return_url=self.return_url,
            sandbox=self.c.settings.cashier_sandbox_hints,
            **context,
        )


def _page(request: Request) -> CashierPage:
    query_lang = request.query_params.get("lang")
    lang = languages.choose(query_lang, request.headers.get("accept-language", ""))
    switched = languages.override(query_lang) is not None
    return CashierPage.new(lang, request.query_params.multi_items(), switched=switched)


def _query_wallet(request: Request) -> str | None:
    wallet = request.query_params.get("wallet")
    return wallet if wallet in WALLETS else None


def _cashier_url(order: PayOrderView) -> str:
    if order.pay_data is not None and order.pay_data.type == "cashier_url" and isinstance(order.pay_data.value, str):
        return order.pay_data.value
    return ""


def _status_url(order: PayOrderView) -> str:
    url = _cashier_url(order)
    return (urlsplit(url).path.rstrip("/") if url else "") + "/status"


def _qr(order: PayOrderView) -> Markup | None:
    """The QR of the page's own URL (SVG made by the qrcode library from our URL; no payer text in it)."""
    url = _cashier_url(order)
    return Markup(qr_svg(url)) if url else None


def _not_found(page: CashierPage) -> Response:
    t = TEXTS[page.lang]
    return page.render(
        "message.html", title=t["not_found_title"], status=404, code="NOT_FOUND", text=t["not_found"], reference=""
    )


def _error(page: CashierPage, request: Request, exc: Exception) -> Response:
    """A friendly page with the code and the request id; the exception itself goes only to the log."""
    t = TEXTS[page.lang]
    if isinstance(exc, TomatoError):
        code, status = exc.code, exc.status
        if code in FRIENDLY_CODES:
            text = t[code]
        elif status < 500:
            text = exc.message if page.lang == languages.EN else t["error_generic"]
        else:
            text = t["INTERNAL_ERROR"]
        log.info("cashier %s: %s %s", request.url.path, code, exc.message)
    else:
        code, status, text = "INTERNAL_ERROR", 500, t["INTERNAL_ERROR"]
        log.error("cashier error on %s [%s]", request.url.path, request_id(request), exc_info=exc)
    return page.render(
        "message.html", title=t["error_title"], status=status, code=code, text=text, reference=request_id(request)
    )
