"""core.logs (JSON lines, the request id filter, one handler however often configured), the operator-endpoint
token check of gateway.endpoint_guard, and a scrape that survives a failing or stuck probe (gateway.metrics)."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest

from tomato.core.logs import REQUEST_ID, configure_logging
from tomato.gateway.endpoint_guard import offered_token, token_matches


@pytest.fixture
def restore_root() -> Iterator[list[logging.Handler]]:
    root = logging.getLogger()
    level, installed = root.level, []
    yield installed
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)


def test_json_line_fields(restore_root: list[logging.Handler]) -> None:
    out = io.StringIO()
    restore_root.append(configure_logging("DEBUG", "json", stream=out))
    log = logging.getLogger("tomato.unit")
    token = REQUEST_ID.set("rid-1")
    try:
        log.info("paid %s", "P1", extra={"status": 201, "duration_ms": 1.5, "thing": object(),
                                         "color_message": "\x1b[1mpaid\x1b[0m"})  # fmt: skip
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "paid P1" and first["level"] == "INFO" and first["logger"] == "tomato.unit"
    assert first["request_id"] == "rid-1" and first["status"] == 201 and first["duration_ms"] == 1.5
    assert first["thing"].startswith("<object object")  # anything else is written as its str
    assert "color_message" not in first  # uvicorn's coloured copy of the message
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert "request_id" not in second and second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc_info"] and "Traceback" in second["exc_info"]


def test_configuring_twice_keeps_one_handler(restore_root: list[logging.Handler]) -> None:
    first, second = io.StringIO(), io.StringIO()
    restore_root.append(configure_logging("INFO", "json", stream=first))
    restore_root.append(configure_logging("INFO", "text", stream=second))
    logging.getLogger("tomato.unit").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1 and "WARNING tomato.unit: once" in second.getvalue()
    assert logging.getLogger("aio_pika").level == logging.WARNING  # chatty libraries stay quiet


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "basic", "offered"),
    [
        ("Bearer abc", False, "abc"),
        ("bearer  abc ", False, "abc"),
        (None, False, None),
        ("Token abc", True, None),
        (_basic("x", "abc"), False, None),  # /metrics takes Bearer only
        (_basic("x", "abc"), True, "abc"),
        (_basic("", "a:b"), True, "a:b"),  # the password may hold a colon
        ("Basic not-base64!", True, None),
    ],
)
def test_offered_token(header: str | None, basic: bool, offered: str | None) -> None:
    assert offered_token(header, basic=basic) == offered


def test_token_matches_only_the_exact_token() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cret ", "s3cret") and not token_matches("s3cre", "s3cret")
    assert not token_matches(None, "s3cret") and not token_matches("", "s3cret")


async def test_a_failing_or_stuck_probe_leaves_the_rest_of_the_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from tomato.gateway import metrics as metrics_module
    from tomato.gateway.metrics import Metrics, gauge

    monkeypatch.setattr(metrics_module, "PROBE_TIMEOUT_S", 0.05)
    m = Metrics()

    async def fine() -> list[object]:
        return [gauge("tomato_test_fine", "A probe that answers.", 7)]

    async def broken() -> list[object]:
        raise ConnectionError("database down")

    async def stuck() -> list[object]:
        await asyncio.Event().wait()
        return []

    for probe in (fine, broken, stuck):
        m.probe(probe)  # type: ignore[arg-type]
    m.observe("GET", "/healthz", 200, 0.01)
    text = (await m.render()).decode()
    assert "tomato_test_fine 7.0" in text
    assert 'tomato_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
