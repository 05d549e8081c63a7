"""The finance workflow: resolving discrepancies and pay anomalies, each once, each audited; accepting the channel's
figure or resolving an anomaly's cash writes the outbox event the ledger books, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tomato.core.clock import as_utc
from tomato.core.outbox import add_event
from tomato.reconciliation import repository as repo
from tomato.reconciliation.deps import ReconDeps
from tomato.reconciliation.errors import AlreadyResolved, AnomalyNotFound, DiscrepancyNotFound
from tomato.reconciliation.events import ADJUSTMENT, ANOMALY_RESOLVED, MONEY_IN_ANOMALIES
from tomato.reconciliation.models import ReconAudit
from tomato.reconciliation.schemas import AnomalyItem, DiscrepancyView, Resolution
from tomato.reconciliation.views import adjustment_facts, discrepancy_view, snapshot, to_json


class FinanceWorkflow:
    """Mixed into ReconciliationService (it provides `deps` and `_tz`)."""

    deps: ReconDeps
    _tz: ZoneInfo

    def _audit(
        self, s: Any, subject_type: str, subject_id: str, action: str, actor: str, note: str | None,
        before: dict[str, Any], after: dict[str, Any],
    ) -> None:  # fmt: skip
        repo.add_audit(
            s,
            ReconAudit(id=self.deps.ids.next_int(), subject_type=subject_type, subject_id=subject_id, action=action,
                       actor=actor, note=note, before=to_json(before), after=to_json(after), at=self.deps.clock.now()),
        )  # fmt: skip

    async def resolve(self, discrepancy_id: str, action: str, note: str, actor: str) -> DiscrepancyView:
        """OPEN → RESOLVED with the action and note, audited; ACCEPT_CHANNEL also writes the adjustment event (in
        the same transaction, so exactly once). Anything but OPEN → AlreadyResolved (409)."""
        now = self.deps.clock.now()
        async with self.deps.db.uow() as uow:
            s = uow.session
            d = await repo.get_discrepancy(s, discrepancy_id)
            if d is None:
                raise DiscrepancyNotFound(f"discrepancy {discrepancy_id} not found")
            before = snapshot(d)
            values = {"status": "RESOLVED", "resolution_action": action, "resolution_note": note,
                      "resolved_by": actor, "resolved_at": now}  # fmt: skip
            if not await repo.resolve_discrepancy(s, discrepancy_id, "OPEN", values):
                raise AlreadyResolved(f"discrepancy {discrepancy_id} is already {d.status}")
            await s.refresh(d)
            batch = await repo.get_batch(s, d.batch_id)
            assert batch is not None
            if action == "ACCEPT_CHANNEL":
                facts = adjustment_facts(d, batch.channel_account_id, batch.business_date)
                if facts is not None:
                    add_event(
                        s,
                        self.deps.ids,
                        event_type=ADJUSTMENT,
                        aggregate_type="recon_discrepancy",
                        aggregate_id=d.id,
                        data={"discrepancy_id": d.id, "type": d.type},
                        facts=facts,
                    )
            self._audit(s, "discrepancy", d.id, action, actor, note, before, snapshot(d))
            await uow.commit()
        self.deps.wake_relay()
        return discrepancy_view(d)

    async def list_anomalies(self, after: str | None, limit: int, kind: str | None) -> list[AnomalyItem]:
        items = await self.deps.pay.list_anomalies(after, limit, kind)
        async with self.deps.db.uow() as uow:
            done = await repo.anomaly_resolutions(uow.session, [a.id for a in items])
        return [self._anomaly_item(a, done.get(a.id)) for a in items]

    @staticmethod
    def _anomaly_item(a: Any, r: Any) -> AnomalyItem:
        resolution = None if r is None else Resolution(action=r.action, note=r.note, by=r.resolved_by, at=r.resolved_at)
        return AnomalyItem(
            id=a.id, kind=a.kind, status="OPEN" if r is None else "RESOLVED", order_no=a.order_no,
            refund_no=a.refund_no, mch_no=a.mch_no, channel_account_id=a.channel_account_id,
            channel_trade_no=a.channel_trade_no, amount=a.amount, note=a.note, created_at=a.created_at,
            resolution=resolution,
        )  # fmt: skip

    async def resolve_anomaly(self, anomaly_id: str, action: str, note: str, actor: str) -> AnomalyItem:
        a = await self.deps.pay.get_anomaly(anomaly_id)
        if a is None:
            raise AnomalyNotFound(f"anomaly {anomaly_id} not found")
        now = self.deps.clock.now()
        business_date = as_utc(now).astimezone(self._tz).date().isoformat()
        async with self.deps.db.uow() as uow:
            s = uow.session
            event_id = None
            if a.kind in MONEY_IN_ANOMALIES and a.amount and a.channel_account_id:
                facts = {"anomaly_id": a.id, "kind": a.kind, "action": action, "amount": a.amount, "mch_no": a.mch_no,
                         "order_no": a.order_no, "channel_account_id": a.channel_account_id,
                         "business_date": business_date}  # fmt: skip
                event = add_event(
                    s,
                    self.deps.ids,
                    event_type=ANOMALY_RESOLVED,
                    aggregate_type="pay_anomaly",
                    aggregate_id=a.id,
                    data={"anomaly_id": a.id, "action": action},
                    facts=facts,
                )
                event_id = event.id
            values = {"anomaly_id": a.id, "action": action, "note": note, "resolved_by": actor, "resolved_at": now,
                      "event_id": event_id}  # fmt: skip
            if not await repo.add_anomaly_resolution(s, values):
                raise AlreadyResolved(f"anomaly {anomaly_id} is already resolved")
            before = self._anomaly_item(a, None).model_dump(mode="json")
            item = self._anomaly_item(a, _Res(action, note, actor, now))
            self._audit(s, "anomaly", a.id, action, actor, note, before, item.model_dump(mode="json"))
            await uow.commit()
        self.deps.wake_relay()
        return item


@dataclass(frozen=True)
class _Res:
    action: str
    note: str
    resolved_by: str
    resolved_at: datetime
