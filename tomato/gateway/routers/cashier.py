"""The hosted cashier `/cashier/{token}` of CASHIER orders (docs/api.md): plain server-rendered HTML.

The page shows the amount, the subject and a QR of its own URL. Opened by the Alipay app (User-Agent
`AlipayClient`) it precreates the Alipay trade (so it exists at the channel at once) and redirects the app to
Alipay's pay link for it; opened by WeChat (`MicroMessenger`, with `?openid=…` in this sandbox world) it starts
the JSAPI attempt and shows the JSAPI parameters; anywhere else it offers both wallets (`?wallet=alipay`, which
redirects to Alipay's WAP page, and `?wallet=wechat&openid=…`). A tiny nonce'd inline script polls
`/cashier/{token}/status` and shows paid, closed, expired or failed.

Everything shown is escaped; each response carries a strict CSP (only this page's nonce'd inline script and
style), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`. Errors become a
friendly page with the error code, never a stack trace.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tomato.core.errors import TomatoError
from tomato.gateway.deps import container
from tomato.gateway.errors import request_id
from tomato.pay.errors import OrderNotFound
from tomato.pay.schemas import PayOrderView

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cashier", tags=["cashier"], include_in_schema=False)

ALIPAY_UA, WECHAT_UA = "AlipayClient", "MicroMessenger"
WALLETS = ("alipay", "wechat")
POLL_MS = 1500
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_OPENID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, as WeChat openids are
JSAPI_FIELDS = ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign")

STATE_LABELS = {
    "waiting": "Waiting for payment…",
    "paid": "Paid. Thank you!",
    "closed": "Closed: this order can no longer be paid.",
    "expired": "Expired: this payment link is no longer valid.",
    "failed": "Failed: the payment did not go through.",
}
FRIENDLY = {
    "NO_CHANNEL_AVAILABLE": "This wallet is not available for this order right now. Please try another wallet.",
    "CHANNEL_ERROR": "The payment channel did not answer. Please try again in a moment.",
    "INTERNAL_ERROR": "Something went wrong on our side. Please try again in a moment.",
}


# --- routes ----------------------------------------------------------------------------------------------------


@router.get("/{token}")
async def cashier_page(token: str, request: Request) -> Response:
    """The payer's page: wallet flows by User-Agent (or `?wallet=`), both choices otherwise."""
    page = _Page.new()
    if not _TOKEN.match(token):
        return _not_found(page)
    c = container(request)
    try:
        order = await c.pay.cashier_order(token)
    except OrderNotFound:
        return _not_found(page)
    except Exception as exc:
        return _error(page, request, exc)
    in_app = detect_wallet(request.headers.get("user-agent", ""))
    wallet = in_app or _query_wallet(request)
    if wallet is None or display_state(order, c.clock.now()) != "waiting":
        return page.render(order.subject, _order_html(order, c.clock.now()))
    openid = request.query_params.get("openid", "").strip() or None
    if wallet == "wechat" and (openid is None or not _OPENID.match(openid)):
        body = _summary(order) + _openid_form(openid is not None) + _status_html(order, c.clock.now())
        return page.render(order.subject, body)
    try:
        started = await c.pay.start_cashier(
            token, wallet, openid if wallet == "wechat" else None, in_app=in_app is not None
        )
    except OrderNotFound:
        return _not_found(page)
    except Exception as exc:
        return _error(page, request, exc)
    order, data = started.order, started.wallet_pay_data
    now = c.clock.now()
    if display_state(order, now) == "waiting" and data is not None:
        url = data.get("value")
        alipay_link = data.get("type") in ("redirect_url", "qr_code")  # a page-pay request or the app's pay link
        if wallet == "alipay" and alipay_link and isinstance(url, str) and _is_http(url):
            return page.redirect(url, "Continue to Alipay")
        params = data.get("value")
        if wallet == "wechat" and data.get("type") == "jsapi" and isinstance(params, dict):
            return page.render(order.subject, _summary(order) + _jsapi_html(params) + _status_html(order, now))
    note = ""
    if display_state(order, now) == "waiting":
        note = "<p class='note' id='other-wallet'>This order is already being paid with another wallet.</p>"
    return page.render(order.subject, _summary(order) + note + _status_html(order, now))


@router.get("/{token}/status")
async def cashier_status(token: str, request: Request) -> JSONResponse:
    """`{status, state, paid_at}` for the page's poller; `state` is what the page shows."""
    if not _TOKEN.match(token):
        raise OrderNotFound("unknown cashier link")
    c = container(request)
    order = await c.pay.cashier_order(token)
    body = {"status": order.status, "state": display_state(order, c.clock.now()), "paid_at": order.paid_at}
    return JSONResponse(body, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


# --- pure helpers ------------------------------------------------------------------------------------------------


def detect_wallet(user_agent: str) -> str | None:
    """`alipay` inside the Alipay app, `wechat` inside WeChat, None in any other browser."""
    if ALIPAY_UA in user_agent:
        return "alipay"
    if WECHAT_UA in user_agent:
        return "wechat"
    return None


def display_state(order: PayOrderView, now: datetime) -> str:
    """waiting | paid | failed | closed | expired (closed because its time ran out, or past it and never tried)."""
    if order.status == "SUCCEEDED":
        return "paid"
    if order.status == "FAILED":
        return "failed"
    expired = now >= datetime.fromisoformat(order.expire_at)
    if order.status == "CLOSED":
        return "expired" if expired else "closed"
    if order.status == "CREATED" and expired:  # the expiry job has not closed it yet; do not start a wallet now
        return "expired"
    return "waiting"


def format_yuan(fen: int) -> str:
    """Integer fen → "1,234.56" without floats."""
    yuan, cents = divmod(fen, 100)
    return f"{yuan:,}.{cents:02d}"


def qr_svg(data: str) -> str:
    """The QR code of `data` as an inline SVG string (no image libraries)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = image.to_string(encoding="unicode")
    assert isinstance(svg, str)
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)  # sized by the page's CSS


def _query_wallet(request: Request) -> str | None:
    wallet = request.query_params.get("wallet")
    return wallet if wallet in WALLETS else None


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _cashier_url(order: PayOrderView) -> str:
    if order.pay_data is not None and order.pay_data.type == "cashier_url" and isinstance(order.pay_data.value, str):
        return order.pay_data.value
    return ""


def _script_json(value: Any) -> str:
    """JSON safe inside a `<script type="application/json">` block."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- page fragments ---------------------------------------------------------------------------------------------

e = html.escape


def _summary(order: PayOrderView) -> str:
    return (
        f"<h1 id='subject'>{e(order.subject)}</h1>"
        f"<p class='amount' id='amount'><span class='cur'>¥</span>{format_yuan(order.amount)}</p>"
        f"<p class='meta'>Order <span id='order-no'>{e(order.order_no)}</span></p>"
    )


def _status_html(order: PayOrderView, now: datetime) -> str:
    state = display_state(order, now)
    url = _cashier_url(order)
    status_path = (urlsplit(url).path.rstrip("/") if url else "") + "/status"
    return (
        f"<p id='status' class='status' role='status' aria-live='polite' data-state='{e(state)}'"
        f" data-url='{e(status_path)}'>{e(STATE_LABELS[state])}</p>"
    )


def _order_html(order: PayOrderView, now: datetime) -> str:
    """The default view: summary, QR of the page's own URL, both wallets (while payable), status."""
    parts = [_summary(order)]
    url = _cashier_url(order)
    if display_state(order, now) == "waiting":
        if url:
            parts.append(
                "<figure class='qr actions'>"
                f"<div id='qr' role='img' aria-label='QR code of this page'>{qr_svg(url)}</div>"
                "<figcaption>Scan with Alipay or WeChat</figcaption></figure>"
            )
        parts.append(_choices_html())
    parts.append(_status_html(order, now))
    return "".join(parts)


def _choices_html() -> str:
    alipay = "?" + urlencode({"wallet": "alipay"})
    return (
        "<section class='actions choices' id='choices' aria-label='Pay with'>"
        f"<a class='btn alipay' id='pay-alipay' href='{e(alipay)}'>Pay with Alipay</a>"
        "<form class='wechat' id='pay-wechat' method='get'>"
        "<input type='hidden' name='wallet' value='wechat'>"
        "<label for='openid'>WeChat openid (sandbox)</label>"
        "<input id='openid' name='openid' required maxlength='128' autocomplete='off'"
        " placeholder='oUpF8uMuAJO_M2pxb1Q9zNjWeS6o'>"
        "<button class='btn wechat' type='submit'>Pay with WeChat</button></form></section>"
    )


def _openid_form(invalid: bool) -> str:
    problem = "That openid is not valid." if invalid else "WeChat Pay needs your openid to continue."
    return (
        f"<section class='note' id='need-openid'><p>{problem} In the real WeChat app it comes from WeChat "
        "sign-in; in this sandbox, add <code>?openid=…</code> to this page's address or enter it here.</p>"
        "<form method='get'><input type='hidden' name='wallet' value='wechat'>"
        "<label for='openid'>openid</label>"
        "<input id='openid' name='openid' required maxlength='128' autocomplete='off'>"
        "<button class='btn wechat' type='submit'>Continue</button></form></section>"
    )


def _jsapi_html(params: dict[str, Any]) -> str:
    shown = {k: str(params.get(k, "")) for k in JSAPI_FIELDS}
    rows = "".join(f"<dt>{e(k)}</dt><dd data-field='{e(k)}'>{e(v)}</dd>" for k, v in shown.items())
    return (
        "<section class='actions jsapi' id='jsapi'><h2>WeChat Pay (JSAPI)</h2>"
        f"<dl id='jsapi-params'>{rows}</dl>"
        f"<script type='application/json' id='jsapi-data'>{_script_json(shown)}</script>"
        "<button class='btn wechat' type='button' id='wx-pay'>Pay in WeChat</button>"
        "<p class='note' id='wx-note' hidden>This sandbox has no WeChat app, so there is no "
        "<code>WeixinJSBridge</code> to open the payment sheet. Pay with <code>POST /sandbox/scan</code> and "
        "this order number; this page updates by itself.</p></section>"
    )


# --- responses ---------------------------------------------------------------------------------------------------

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#f4f5f7;
color:#1f2328}
main{max-width:420px;margin:0 auto;padding:24px 16px;background:#fff;min-height:100vh}
h1{font-size:1.15rem;margin:0 0 4px;overflow-wrap:anywhere}
h2{font-size:1rem;margin:16px 0 8px}
.amount{font-size:2.25rem;font-weight:700;margin:0;color:#d9381e}
.cur{font-size:1.25rem;margin-right:2px}
.meta{color:#6e7781;font-size:.85rem;margin:0 0 16px;overflow-wrap:anywhere}
.qr{margin:0 auto 16px;max-width:260px;text-align:center}
.qr svg{display:block;width:100%;height:auto}
.qr figcaption{color:#6e7781;font-size:.85rem}
.choices{display:grid;gap:12px;margin-bottom:16px}
.btn{display:block;width:100%;padding:12px;border:0;border-radius:8px;font-size:1rem;text-align:center;
text-decoration:none;color:#fff;cursor:pointer}
.btn.alipay{background:#1677ff}.btn.wechat{background:#07c160}
form{display:grid;gap:6px}
input{font-size:1rem;padding:10px;border:1px solid #d0d7de;border-radius:8px;width:100%}
label{font-size:.85rem;color:#6e7781}
dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px;font-size:.8rem;margin:0 0 12px}
dt{color:#6e7781}dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,monospace}
.note{background:#fff8c5;border-radius:8px;padding:10px 12px;font-size:.9rem}
.status{text-align:center;font-weight:600;padding:12px;border-radius:8px;background:#f6f8fa}
.status[data-state=paid]{background:#dafbe1;color:#1a7f37}
.status[data-state=failed],.status[data-state=closed],.status[data-state=expired]{background:#ffebe9;color:#cf222e}
body:not([data-state=waiting]) .actions{display:none}
.error{color:#cf222e}
code{overflow-wrap:anywhere}
"""

_SCRIPT = """
(function () {
  var LABELS = __LABELS__, FINAL = {paid: 1, closed: 1, expired: 1, failed: 1};
  var box = document.getElementById('status');
  var pay = document.getElementById('wx-pay');
  if (pay) pay.addEventListener('click', function () {
    var params = JSON.parse(document.getElementById('jsapi-data').textContent);
    if (typeof window.WeixinJSBridge !== 'undefined') {
      window.WeixinJSBridge.invoke('getBrandWCPayRequest', params, function () {});
    } else {
      document.getElementById('wx-note').hidden = false;
    }
  });
  if (!box) return;
  function show(state) {
    document.body.setAttribute('data-state', state);
    box.setAttribute('data-state', state);
    box.textContent = LABELS[state] || state;
  }
  function poll() {
    fetch(box.getAttribute('data-url'), {cache: 'no-store', headers: {Accept: 'application/json'}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && s.state) show(s.state);
        if (!(s && FINAL[s.state])) setTimeout(poll, __POLL_MS__);
      }, function () { setTimeout(poll, __POLL_MS__ * 2); });
  }
  document.body.setAttribute('data-state', box.getAttribute('data-state'));
  if (!FINAL[box.getAttribute('data-state')]) setTimeout(poll, __POLL_MS__);
})();
""".replace("__LABELS__", json.dumps(STATE_LABELS, ensure_ascii=False)).replace("__POLL_MS__", str(POLL_MS))


@dataclass(frozen=True)
class _Page:
    """One response's nonce and its security headers."""

    nonce: str

    @classmethod
    def new(cls) -> _Page:
        return cls(secrets.token_urlsafe(18))

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
        }

    def render(self, title: str, body: str, status: int = 200) -> Response:
        document = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta name='robots' content='noindex'>"
            f"<title>{e(title)} · Tomato Pay</title><style nonce='{self.nonce}'>{_STYLE}</style></head>"
            f"<body data-state='waiting'><main>{body}</main><script nonce='{self.nonce}'>{_SCRIPT}</script>"
            "</body></html>"
        )
        return Response(document, status_code=status, media_type="text/html; charset=utf-8", headers=self.headers())

    def redirect(self, url: str, label: str) -> Response:
        body = f"<p><a href='{e(url)}'>{e(label)}</a></p>"
        response = self.render(label, body, status=302)
        response.headers["Location"] = url
        return response


def _not_found(page: _Page) -> Response:
    body = (
        "<h1>Payment link not found</h1><p class='error' id='error' data-code='NOT_FOUND'>This payment link is not "
        "valid. Please ask the merchant for a new one.</p>"
    )
    return page.render("Not found", body, status=404)


def _error(page: _Page, request: Request, exc: Exception) -> Response:
    """A friendly page with the code and the request id; the exception itself goes only to the log."""
    if isinstance(exc, TomatoError):
        code, status = exc.code, exc.status
        text = FRIENDLY.get(code) or (exc.message if status < 500 else FRIENDLY["INTERNAL_ERROR"])
        log.info("cashier %s: %s %s", request.url.path, code, exc.message)
    else:
        code, status, text = "INTERNAL_ERROR", 500, FRIENDLY["INTERNAL_ERROR"]
        log.error("cashier error on %s [%s]", request.url.path, request_id(request), exc_info=exc)
    body = (
        f"<h1>Payment could not start</h1><p class='error' id='error' data-code='{e(code)}'>{e(text)}</p>"
        f"<p class='meta'>Code <code>{e(code)}</code> · reference <code>{e(request_id(request))}</code></p>"
    )
    return page.render("Payment error", body, status=status)
