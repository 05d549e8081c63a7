"""Issue 16: bad input never reaches a 500 — and every refusal keeps the shape its client expects.

An internal error answers `500 INTERNAL_ERROR` on a connection that stays usable; admin tokens are checked before
the body is parsed; `/v1` 404/405 answers to a known app are signed (405 with `Allow`); times render RFC 3339 UTC;
an unparseable body gets one `400` shape everywhere; a callback for an unknown account is refused in the channel's
own form.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.stack import admin
from tomato.bootstrap import Container
from tomato.gateway.app import create_app
from tomato.runtime.servers import EmbeddedServer

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NOT_JSON = {"code": "INVALID_REQUEST", "message": "the body was not JSON"}


def error(r: httpx.Response) -> dict[str, Any]:
    err: dict[str, Any] = r.json()["error"]
    return err


@asynccontextmanager
async def served(c: Container) -> AsyncIterator[str]:
    """The gateway over a real socket (uvicorn on a free loopback port), for what only a connection shows."""
    config = uvicorn.Config(create_app(c), host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server stopped while starting"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- an internal error is a proper 500 on a connection that stays usable ------------------------------------------


async def test_admin_internal_error_is_a_json_500_and_the_connection_stays_usable(stack, monkeypatch) -> None:
    c, _ = stack

    async def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not bad input")

    async with served(c) as base_url:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
            with monkeypatch.context() as patch:
                patch.setattr(c.merchants, "list_merchants", boom)
                failed = await client.get("/admin/merchants", headers=admin())
            assert failed.status_code == 500
            assert failed.headers["content-type"] == "application/json"
            assert error(failed)["code"] == "INTERNAL_ERROR"
            assert "a bug" not in failed.text  # nothing of the exception leaks
            assert failed.headers.get("connection", "").lower() != "close"
            stream = failed.extensions["network_stream"]
            ok = await client.get("/admin/merchants", headers=admin())
            assert ok.status_code == 200
            # the same connection answered: the server kept it open after the 500
            assert ok.extensions["network_stream"] is stream


# --- admin: the token before the body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer not-a-token"}, 401, "UNAUTHENTICATED"),
        (admin("finance"), 403, "FORBIDDEN"),
        (admin("operator"), 400, "INVALID_REQUEST"),
    ],
)
async def test_admin_checks_the_token_before_parsing_the_body(stack, headers, status, code) -> None:
    _, client = stack
    r = await client.post(
        "/admin/merchants", content=b'{"name": ', headers={**headers, "Content-Type": "application/json"}
    )
    assert (r.status_code, error(r)["code"]) == (status, code), r.text


# --- /v1: a known app's 404 and 405 are signed ----------------------------------------------------------------------


@pytest.mark.parametrize("rsa", [False, True])
async def test_unknown_v1_path_answers_a_signed_404(pay, rsa: bool) -> None:
    client: MerchantClient = pay.rsa_client if rsa else pay.client
    r = await client.request("GET", "/v1/no-such-thing?x=1")  # verifies the response signature
    assert r.status_code == 404 and error(r)["code"] == "NOT_FOUND"


async def test_wrong_method_answers_a_signed_405_with_allow(pay) -> None:
    r = await pay.client.request("DELETE", "/v1/pay/orders")
    assert r.status_code == 405 and error(r)["code"] == "METHOD_NOT_ALLOWED"
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}
    r = await pay.client.request("PUT", "/v1/refunds/R1", {})
    assert r.status_code == 405 and r.headers["allow"] == "GET"


async def test_unmatched_v1_request_of_an_unknown_app_stays_unsigned(pay) -> None:
    stranger = MerchantClient(pay.http, "A-no-such-app", secret="whatever")
    r = await stranger.request("GET", "/v1/no-such-thing", verify=False)
    assert r.status_code == 401 and error(r)["code"] == "APP_NOT_FOUND"
    assert "tomato-signature" not in r.headers


async def test_unmatched_v1_request_is_authenticated_first(pay) -> None:
    forger = MerchantClient(pay.http, pay.client.app_id, secret="not-the-secret")
    r = await forger.request("GET", "/v1/no-such-thing", verify=False)
    assert r.status_code == 401 and error(r)["code"] == "SIGNATURE_INVALID"
    pay.client.verify(r)


async def test_admin_405_carries_allow(stack) -> None:
    _, client = stack
    r = await client.put("/admin/merchants", headers=admin())
    assert r.status_code == 405 and error(r)["code"] == "METHOD_NOT_ALLOWED"
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}


# --- admin views render RFC 3339 UTC times ---------------------------------------------------------------------------


async def test_admin_views_render_created_at_in_utc(pay) -> None:
    http = pay.http
    times: list[str] = []
    created = await http.post("/admin/merchants", json={"name": "Tea Ltd"}, headers=admin())
    assert created.status_code == 201, created.text
    times.append(created.json()["created_at"])
    mch_no = created.json()["mch_no"]
    app = await http.post(f"/admin/merchants/{mch_no}/apps", json={"name": "shop"}, headers=admin())
    assert app.status_code == 201, app.text
    times += [app.json()["app"]["created_at"], app.json()["app"]["keys"][0]["created_at"]]
    merchants = (await http.get("/admin/merchants", headers=admin())).json()["data"]
    for m in merchants:
        times.append(m["created_at"])
        for a in m["apps"]:
            times += [a["created_at"], *(k["created_at"] for k in a["keys"])]
    got = (await http.get(f"/admin/apps/{pay.client.app_id}", headers=admin())).json()
    times += [got["created_at"], *(k["created_at"] for k in got["keys"])]
    accounts = (await http.get("/admin/channel-accounts", headers=admin())).json()["data"]
    assert accounts
    times += [a["created_at"] for a in accounts]
    account = await http.get(f"/admin/channel-accounts/{accounts[0]['id']}", headers=admin())
    times.append(account.json()["created_at"])
    rules = (await http.get("/admin/routing-rules", headers=admin())).json()["data"]
    assert rules
    times += [r["created_at"] for r in rules]
    assert len(times) >= 8
    assert [t for t in times if not RFC3339_UTC.match(t)] == []


# --- one 400 shape for a body that is not JSON ----------------------------------------------------------------------

# broken syntax, and bytes that are not even UTF-8 (FastAPI answers the two differently)
UNPARSEABLE = [b'{"out_trade_no": ', b'{"name": "\xff\xfe"}']


@pytest.mark.parametrize("raw", UNPARSEABLE)
async def test_unparseable_v1_body_has_the_one_400_shape(pay, raw: bytes) -> None:
    r = await pay.client.request("POST", "/v1/pay/orders", raw=raw)
    assert r.status_code == 400
    body = error(r)
    assert {k: body[k] for k in NOT_JSON} == NOT_JSON and "details" not in body
    assert set(body) == {"code", "message", "request_id"}


@pytest.mark.parametrize("raw", UNPARSEABLE)
async def test_unparseable_admin_body_has_the_one_400_shape(stack, raw: bytes) -> None:
    _, client = stack
    r = await client.post("/admin/merchants", content=raw, headers={**admin(), "Content-Type": "application/json"})
    assert r.status_code == 400
    body = error(r)
    assert {k: body[k] for k in NOT_JSON} == NOT_JSON and set(body) == {"code", "message", "request_id"}


# --- callbacks for an unknown account are refused in the channel's form -----------------------------------------------


async def test_callback_for_unknown_account_is_refused_in_each_channels_form(pay) -> None:
    wechat = await pay.http.post("/callbacks/wechat/CA-none", content=b"{}")
    assert 400 <= wechat.status_code < 500
    assert wechat.json()["code"] == "FAIL" and wechat.json()["message"]
    bank = await pay.http.post("/callbacks/bank/CA-none", content=b"a=b")
    assert bank.status_code == 400
    alipay = await pay.http.post("/callbacks/alipay/CA-none", content=b"a=b")
    assert alipay.status_code == 200 and alipay.text == "fail"  # Alipay retries anything but `success`


async def test_callback_naming_another_channels_account_is_refused_in_the_paths_form(pay) -> None:
    r = await pay.http.post(f"/callbacks/wechat/{pay.accounts['alipay']}", content=b"{}")
    assert 400 <= r.status_code < 500 and r.json()["code"] == "FAIL"
    r = await pay.http.post(f"/callbacks/alipay/{pay.accounts['bank']}", content=b"a=b")
    assert (r.status_code, r.text) == (200, "fail")
