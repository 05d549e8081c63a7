"""Issue 16: a signed-looking `/v1` request with a malformed `Tomato-Timestamp` is a 401 naming the header, never a
500 (`²` passes `str.isdigit()` and then fails `int()`), and the signature covers the timestamp bytes as sent."""

from __future__ import annotations

import re
import time

from fastapi.routing import APIRoute

from tests.fixtures.merchant_client import nonce
from tests.fixtures.pay_stack import PayStack
from tomato.gateway.routers.v1 import events, pay_orders, platform, refunds


def _v1_routes() -> list[tuple[str, str]]:
    """Every `/v1` method and path, path parameters filled in: a route added later is covered too."""
    found = []
    for module in (events, pay_orders, platform, refunds):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            path = re.sub(r"\{[^}]+\}", "X1", route.path)
            found += [(method, path) for method in sorted(route.methods)]
    return found


V1_ROUTES = _v1_routes()
# not ASCII digits, though `str.isdigit()` says yes to each; header bytes are Latin-1, so a server sees exactly these
BAD_TIMESTAMPS = ["²", "17²", "¹²³"]


async def test_a_non_ascii_digit_timestamp_is_401_on_every_route(pay: PayStack) -> None:
    assert len(V1_ROUTES) >= 9
    for method, path in V1_ROUTES:
        body = b"{}" if method == "POST" else b""
        for bad in BAD_TIMESTAMPS:
            headers = {**pay.client.headers(method, path, body), "Tomato-Timestamp": bad.encode("latin-1")}
            r = await pay.http.request(method, path, content=body, headers=headers)
            assert r.status_code == 401, (method, path, bad, r.text)
            error = r.json()["error"]
            assert error["code"] == "SIGNATURE_INVALID" and "Tomato-Timestamp" in error["message"]
            pay.client.verify(r)  # a known app: the refusal is signed


async def test_the_signature_covers_the_timestamp_as_sent(pay: PayStack) -> None:
    ts = int(time.time())
    path = "/v1/platform-key"
    # signed over ts, sent as "0" + ts: the bytes sent were not signed
    headers = {**pay.client.headers("GET", path, b"", ts=ts), "Tomato-Timestamp": f"0{ts}"}
    r = await pay.http.get(path, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "SIGNATURE_INVALID", r.text

    # signed over exactly what is sent: accepted, leading zero and all
    n = nonce()
    headers = pay.client.headers("GET", path, b"", ts=ts, n=n)
    message = f"GET\n{path}\n0{ts}\n{n}\n\n".encode()
    headers.update({"Tomato-Timestamp": f"0{ts}", "Tomato-Signature": pay.client._sign(message)})  # noqa: SLF001
    r = await pay.http.get(path, headers=headers)
    assert r.status_code == 200, r.text
