"""Recording what finance must look at (a notify with another amount, a payment after close, …) in the caller's
unit of work, so the anomaly lands exactly when the state change it explains does."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.pay import repository as repo
from tomato.pay.models import PayAnomaly
from tomato.pay.service.deps import PayDeps


def record_anomaly(deps: PayDeps, s: AsyncSession, order_no: str, kind: str, details: dict[str, Any]) -> None:
    repo.add_anomaly(
        s,
        PayAnomaly(
            id=deps.ids.next_id("AN"),
            order_no=order_no,
            kind=kind,
            details=json.dumps(details),
            created_at=deps.clock.now(),
        ),
    )
