"""Issue 16: delivery views render their times as RFC 3339 UTC (`…Z`) like every other API time, whatever tzinfo
the database handed back (SQLite: none; PostgreSQL: an offset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tomato.notice.schemas import AttemptView, DeliveryDetail

NAIVE = datetime(2026, 11, 24, 10, 30, 0)  # what SQLite returns for a UTC time
SHANGHAI = datetime(2026, 11, 24, 18, 30, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize("at", [NAIVE, NAIVE.replace(tzinfo=UTC), SHANGHAI])
def test_delivery_and_attempt_times_are_rfc3339_utc(at: datetime) -> None:
    attempt = AttemptView(attempt_no=1, started_at=at, latency_ms=3, http_status=200, response_body="ok",
                          error_class=None, error_message=None, succeeded=True)  # fmt: skip
    view = DeliveryDetail(
        id="D1",
        event_id="E1",
        event_type="pay.succeeded",
        app_id="A1",
        mch_no="M1",
        url="https://example.com/hook",
        status="SUCCEEDED",
        attempts=1,
        next_attempt_at=at,
        last_status=200,
        last_error=None,
        event_created_at=at,
        created_at=at,
        updated_at=at,
        finished_at=at,
        attempt_log=[attempt],
    )
    body = view.model_dump(mode="json")
    for name in ("next_attempt_at", "event_created_at", "created_at", "updated_at", "finished_at"):
        assert body[name] == "2026-11-24T10:30:00Z", (name, body[name])
    assert body["attempt_log"][0]["started_at"] == "2026-11-24T10:30:00Z"


def test_absent_times_stay_null() -> None:
    view = DeliveryDetail(id="D1", event_id="E1", event_type="pay.succeeded", app_id="A1", mch_no="M1", url="",
                          status="PENDING", attempts=0, next_attempt_at=None, last_status=None, last_error=None,
                          event_created_at=NAIVE, created_at=NAIVE, updated_at=NAIVE, finished_at=None,
                          attempt_log=[])  # fmt: skip
    body = view.model_dump(mode="json")
    assert body["next_attempt_at"] is None and body["finished_at"] is None
