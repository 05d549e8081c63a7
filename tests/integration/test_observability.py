"""Issue 19, observability: `/metrics` and the docs can be turned off (404) or put behind a token (401 without it,
200 with it); JSON logs carry the request id on every line logged while serving a request, one access line per
request, and never a secret or an Authorization/signature header; the backlog figures follow the database."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.pay_stack import pay_stack
from tests.fixtures.stack import ADMIN_TOKENS, admin, running_stack
from tests.fixtures.stack import test_settings as settings_for
from tomato.bootstrap import bootstrap
from tomato.core.logs import configure_logging
from tomato.core.positions import assign_positions
from tomato.gateway.app import create_app
from tomato.gateway.metrics import Metrics
from tomato.runtime.process_metrics import JobMetrics, attach_process_metrics

METRICS_TOKEN = "metrics-token-7f3a9c1e55"
DOCS_TOKEN = "docs-token-1b2c3d4e5f"
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The process's logging as `TOMATO_LOG_FORMAT=json` sets it up, into a buffer; restored afterwards."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    handler = configure_logging("INFO", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@asynccontextmanager
async def gateway(sqlite_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running_stack(settings_for(sqlite_url, tmp_path, **overrides)) as (_, client):
        yield client


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_defaults_serve_metrics_and_offline_docs(sqlite_url: str, tmp_path: Path) -> None:
    async with gateway(sqlite_url, tmp_path) as http:
        assert (await http.get("/healthz")).status_code == 200
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        assert 'tomato_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics.text
        assert 'tomato_http_request_duration_seconds_count{method="GET",route="/healthz"} 1.0' in metrics.text
        page = await http.get("/docs")
        assert page.status_code == 200
        assert 'src="/docs-assets/swagger-ui-bundle.js"' in page.text and "url: '/openapi.json'" in page.text
        assert "cdn" not in page.text.lower() and "https://" not in page.text  # nothing loads from elsewhere
        redoc = await http.get("/redoc")
        assert 'src="/docs-assets/redoc.standalone.js"' in redoc.text and "https://" not in redoc.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
            got = await http.get(f"/docs-assets/{asset}")
            assert got.status_code == 200 and len(got.content) > 1000, asset
        assert "SwaggerUIBundle" in (await http.get("/docs-assets/swagger-ui-bundle.js")).text
        document = await http.get("/openapi.json")
        assert document.status_code == 200 and "/v1/pay/orders" in document.json()["paths"]


async def test_metrics_and_docs_turned_off_are_404(sqlite_url: str, tmp_path: Path) -> None:
    async with gateway(sqlite_url, tmp_path, metrics_enabled=False, docs_enabled=False) as http:
        for path in ("/metrics", *DOCS_PATHS, "/docs-assets/swagger-ui-bundle.js"):
            r = await http.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "NOT_FOUND", path
        assert (await http.get("/healthz")).status_code == 200


async def test_metrics_token_is_a_bearer_token(sqlite_url: str, tmp_path: Path) -> None:
    async with gateway(sqlite_url, tmp_path, metrics_token=METRICS_TOKEN) as http:
        for headers in ({}, bearer("wrong"), bearer(METRICS_TOKEN + "x"), basic(METRICS_TOKEN)):
            r = await http.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == 'Bearer realm="tomato metrics"'
            assert r.json()["error"]["code"] == "UNAUTHENTICATED" and METRICS_TOKEN not in r.text
        ok = await http.get("/metrics", headers=bearer(METRICS_TOKEN))
        assert ok.status_code == 200 and "tomato_http_requests_total" in ok.text
        assert (await http.get("/docs")).status_code == 200  # the docs have their own setting


async def test_docs_token_by_bearer_or_basic(sqlite_url: str, tmp_path: Path) -> None:
    async with gateway(sqlite_url, tmp_path, docs_token=DOCS_TOKEN) as http:
        for path in DOCS_PATHS:
            for headers in ({}, bearer("nope"), basic("nope"), {"Authorization": "Basic !!!"}):
                r = await http.get(path, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"] == 'Basic realm="tomato docs"'  # a browser asks once
            assert (await http.get(path, headers=bearer(DOCS_TOKEN))).status_code == 200, path
            assert (await http.get(path, headers=basic(DOCS_TOKEN))).status_code == 200, path
        assert (await http.get("/metrics")).status_code == 200  # and metrics theirs


async def test_json_logs_carry_the_request_id_and_one_access_line(
    sqlite_url: str, tmp_path: Path, json_logs: io.StringIO
) -> None:
    c = await bootstrap(settings_for(sqlite_url, tmp_path))
    app = create_app(c)
    inside = logging.getLogger("tomato.test.inside")

    @app.get("/_log_inside")
    async def log_inside() -> dict[str, str]:
        inside.info("handler line")

        async def later() -> None:
            inside.warning("task line")  # a task the request started inherits the id

        await asyncio.create_task(later())
        return {"ok": "yes"}

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await http.get("/_log_inside?x=1", headers={"X-Request-Id": "req-42.a"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "req-42.a"
            other = await http.get("/_log_inside")
        inside.info("outside any request")
    finally:
        await c.aclose()
    entries = log_lines(json_logs)
    mine = [e for e in entries if e["logger"] == "tomato.test.inside"]
    assert [(e["message"], e.get("request_id")) for e in mine] == [
        ("handler line", "req-42.a"),
        ("task line", "req-42.a"),
        ("handler line", other.headers["x-request-id"]),
        ("task line", other.headers["x-request-id"]),
        ("outside any request", None),
    ]
    assert all(e["level"] in ("INFO", "WARNING") and e["ts"].endswith("Z") for e in mine)
    access = [e for e in entries if e["logger"] == "tomato.access"]
    assert len(access) == 2
    first = access[0]
    assert (first["method"], first["path"], first["status"], first["request_id"]) == ("GET", "/_log_inside", 200,
                                                                                       "req-42.a")  # fmt: skip
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert "x=1" not in json.dumps(first)  # the query string is not logged


async def test_access_log_can_be_turned_off(sqlite_url: str, tmp_path: Path, json_logs: io.StringIO) -> None:
    async with gateway(sqlite_url, tmp_path, access_log=False) as http:
        assert (await http.get("/healthz")).status_code == 200
    assert not [e for e in log_lines(json_logs) if e["logger"] == "tomato.access"]


async def test_no_secret_or_auth_header_reaches_the_logs(
    sqlite_url: str, tmp_path: Path, json_logs: io.StringIO
) -> None:
    sent: list[str] = []

    async def remember(request: httpx.Request) -> None:
        for name in ("authorization", "tomato-signature"):
            if name in request.headers:
                sent.append(request.headers[name].split(" ", 1)[-1])

    async with pay_stack(sqlite_url, tmp_path, metrics_token=METRICS_TOKEN, docs_token=DOCS_TOKEN) as pay:
        pay.http.event_hooks["request"].append(remember)
        created = await pay.client.create_order(pay_method="ALIPAY_QR")
        assert created.status_code == 201, created.text
        forged = await pay.client.request("GET", "/v1/pay/orders/P1",
                                          extra={"Tomato-Signature": "HMAC-SHA256 Zm9yZ2VkLXNpZ25hdHVyZQ=="},
                                          verify=False)  # fmt: skip
        assert forged.status_code == 401
        assert (await pay.http.get("/admin/merchants", headers=admin())).status_code == 200
        assert (await pay.http.get("/admin/merchants", headers=bearer("not-a-token"))).status_code == 401
        assert (await pay.http.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200
        assert (await pay.http.get("/docs", headers=basic(DOCS_TOKEN))).status_code == 200
        app_secret = pay.client.secret
        assert app_secret
    text = json_logs.getvalue()
    assert len(log_lines(json_logs)) >= 6 and '"logger": "tomato.access"' in text
    assert len(sent) >= 5
    for secret in [*sent, app_secret, *ADMIN_TOKENS.values(), METRICS_TOKEN, DOCS_TOKEN]:
        assert secret and secret not in text, "a secret reached the logs"
    assert "tomato-signature" not in text.lower() and "authorization" not in text.lower()


async def _until_succeeded(db: Any, order_no: str) -> None:
    """The simulator's notify comes from a task of its own after the scan answered: the outbox row exists only once
    it has been applied (reading the figures before that made this test fail now and then)."""
    for _ in range(1000):
        async with db.connect() as conn:
            found = await conn.execute(text("SELECT status FROM pay_orders WHERE order_no = :n"), {"n": order_no})
            if found.scalar_one() == "SUCCEEDED":
                return
        await asyncio.sleep(0.01)  # polling the database for the condition another task brings about
    raise AssertionError(f"{order_no} never became SUCCEEDED")


async def test_backlog_probe_follows_the_database(sqlite_url: str, tmp_path: Path) -> None:
    """The worker's figures, read through the services: an order paid with nothing running behind it leaves unsent
    outbox rows and unbooked events; the job counter counts per job and outcome."""
    async with pay_stack(sqlite_url, tmp_path) as pay:
        metrics = Metrics(http=False)
        attach_process_metrics(metrics, pay.c)
        jobs = JobMetrics(metrics.registry)
        before = (await metrics.render()).decode()
        assert "tomato_outbox_unsent_events 0.0" in before and "tomato_ledger_booking_lag_events 0.0" in before
        assert "tomato_webhook_backlog 0.0" in before and "tomato_reconciliation_open_discrepancies 0.0" in before
        created = await pay.client.create_order(pay_method="ALIPAY_QR")
        assert (await pay.scan(content=created.json()["pay_data"]["value"], result="paid")).status_code == 200
        await _until_succeeded(pay.c.db, created.json()["order_no"])
        await assign_positions(pay.c.db)  # what the relay or the booking consumer does on its next poll
        jobs.observe("pay.expiry", "ok", 0.2)
        jobs.observe("pay.expiry", "skipped", 0.0)
        after = (await metrics.render()).decode()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in after.splitlines() if not line.startswith("#")}
    assert values["tomato_outbox_unsent_events"] >= 1
    assert values["tomato_outbox_oldest_unsent_age_seconds"] >= 0
    assert values["tomato_ledger_booking_lag_events"] >= 1  # nothing booked them
    assert values['tomato_job_runs_total{job="pay.expiry",outcome="ok"}'] == 1
    assert values['tomato_job_runs_total{job="pay.expiry",outcome="skipped"}'] == 1
    assert values['tomato_job_duration_seconds_count{job="pay.expiry"}'] == 1  # a skipped run took no time
    assert values['tomato_job_last_success_timestamp_seconds{job="pay.expiry"}'] > 0
