"""The pay context's use cases; one module per use case, this facade is what other layers call."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Select

from tomato.channel.protocol import ChannelNotify
from tomato.core.rawpg import raw_connection
from tomato.merchant.schemas import AppAuth
from tomato.pay import repository as repo
from tomato.pay.errors import OrderNotFound
from tomato.pay.list_queries import OrderQuery, RefundQuery
from tomato.pay.schemas import (
    AnomalyView,
    CashierOrderView,
    HourlyVolume,
    MethodVolume,
    OrderLookup,
    PayOrderCreate,
    PayOrderView,
    RefundCreate,
    RefundView,
    SucceededOrder,
)
from tomato.pay.service import (
    barcode,
    close,
    confirm,
    create,
    jobs,
    listing,
    lookup,
    reconciliation,
    refunds,
    splits,
)
from tomato.pay.service.confirm import Outcome, PaymentReport
from tomato.pay.service.create import CashierStart
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds import RefundPolicy
from tomato.pay.service.views import order_view
from tomato.pay.split_schemas import SplitCreate, SplitReceiverCreate, SplitReceiverView, SplitView

log = logging.getLogger(__name__)

_NOTIFY_URLS_PG = "SELECT order_no, notify_url FROM pay_orders WHERE order_no = ANY($1::varchar[])"

__all__ = ["CashierStart", "OrderQuery", "Outcome", "PayDeps", "PayService", "RefundPolicy", "RefundQuery"]


class PayService:
    def __init__(self, deps: PayDeps) -> None:
        self.deps = deps

    async def create_order(self, app: AppAuth, cmd: PayOrderCreate) -> tuple[PayOrderView, bool]:
        return await create.create_order(self.deps, app, cmd)

    async def get_order(self, app_id: str, order_no: str) -> PayOrderView:
        order = await repo.row_for_app(self.deps.db.engine, app_id, order_no)
        if order is None:
            raise OrderNotFound(f"order {order_no} not found")
        return order_view(order)

    async def succeeded_orders(self, after: str | None, limit: int) -> list[SucceededOrder]:
        """SUCCEEDED orders by order_no after `after`, `limit` at a time (the ledger check pages through them)."""
        async with self.deps.db.uow() as uow:
            rows = await repo.succeeded_orders(uow.session, after, limit)
        return [SucceededOrder(r.order_no, int(r.amount), r.paid_at) for r in rows]

    async def order_notify_urls(self, order_nos: list[str]) -> dict[str, str | None]:
        """The merchant's own webhook URL per order (None: the app's default applies)."""
        if not order_nos:
            return {}
        if self.deps.db.dialect == "postgresql":  # the webhook consumer asks per batch: one statement, no BEGIN
            async with raw_connection(self.deps.db.engine, "reading orders' notify URLs") as raw:
                rows = await raw.fetch(_NOTIFY_URLS_PG, list(order_nos))
            return {r["order_no"]: r["notify_url"] for r in rows}
        async with self.deps.db.uow() as uow:
            return await repo.notify_urls(uow.session, order_nos)

    async def find_order(self, app_id: str, out_trade_no: str) -> PayOrderView:
        async with self.deps.db.uow() as uow:
            order = await repo.by_out_trade_no(uow.session, app_id, out_trade_no)
        if order is None:
            raise OrderNotFound(f"no order with out_trade_no {out_trade_no}")
        return order_view(order)

    async def list_orders(self, query: OrderQuery, after: str | None, limit: int) -> list[PayOrderView]:
        """The app's orders newest first after the order `after` (a cursor's key); `limit` rows."""
        return await listing.list_orders(self.deps, query, after, limit)

    async def list_refunds(self, query: RefundQuery, after: str | None, limit: int) -> list[RefundView]:
        """The app's refunds newest first after the refund `after` (a cursor's key); `limit` rows."""
        return await listing.list_refunds(self.deps, query, after, limit)

    # --- for the merchant portal (every app of one merchant) -------------------------------------------------

    async def merchant_order(self, mch_no: str, order_no: str) -> PayOrderView:
        """One of the merchant's orders; another merchant's is OrderNotFound, like one that does not exist."""
        return await listing.merchant_order(self.deps, mch_no, order_no)

    async def merchant_refund(self, mch_no: str, refund_no: str) -> RefundView:
        """One of the merchant's refunds; another merchant's is RefundNotFound, like one that does not exist."""
        return await listing.merchant_refund(self.deps, mch_no, refund_no)

    async def today_by_method(self, mch_no: str) -> list[MethodVolume]:
        """Per pay method: the merchant's orders created today (business date), succeeded, succeeded fen."""
        return await listing.today_by_method(self.deps, mch_no)

    async def close_order(self, app_id: str, order_no: str) -> PayOrderView:
        return await close.close_order(self.deps, app_id, order_no)

    async def apply_notify(self, channel_account_id: str, notify: ChannelNotify) -> Outcome:
        """A verified channel notify: a payment's or a refund's. A service provider's notify that names another
        sub-merchant than the order's merchant is refused (the channel hears the refusal in its own form)."""
        if not await self._names_the_orders_sub_merchant(channel_account_id, notify):
            return Outcome.REJECTED
        if notify.kind == "refund":
            return await refunds.apply_refund_notify(self.deps, channel_account_id, notify)
        if notify.kind == "split":
            return await splits.apply_notify(self.deps, channel_account_id, notify)
        if notify.kind != "payment":
            return Outcome.UNCHANGED
        report = PaymentReport(
            order_no=notify.order_no,
            channel_account_id=channel_account_id,
            status=notify.status,
            amount=notify.amount,
            channel_trade_no=notify.channel_trade_no,
            paid_at=notify.paid_at,
        )
        return await confirm.apply_report(self.deps, report)

    async def _names_the_orders_sub_merchant(self, channel_account_id: str, notify: ChannelNotify) -> bool:
        channels = self.deps.channels
        if not await channels.is_service_provider(channel_account_id):
            return True
        async with self.deps.db.uow() as uow:
            order = await repo.get(uow.session, notify.order_no)
        if order is None:  # no such order: the apply path refuses it as for any account
            return True
        if await channels.notify_matches(channel_account_id, order.mch_no, notify.sub_merchant):
            return True
        log.warning(
            "refused a notify for %s on %s: it names sub-merchant %r, not the merchant's",
            notify.order_no, channel_account_id, notify.sub_merchant,
        )  # fmt: skip
        return False

    async def create_refund(
        self, app: AppAuth, cmd: RefundCreate, policy: RefundPolicy | None = None
    ) -> tuple[RefundView, bool]:
        """The refund and whether it was created now (201) rather than found by out_refund_no (200)."""
        default = RefundPolicy(window_days=self.deps.refund_window_days)
        return await refunds.create_refund(self.deps, app, cmd, policy or default)

    async def get_refund(self, app_id: str, refund_no: str) -> RefundView:
        return await refunds.get_refund(self.deps, app_id, refund_no)

    async def find_refund(self, app_id: str, out_refund_no: str) -> RefundView:
        return await refunds.find_refund(self.deps, app_id, out_refund_no)

    async def refund_notify_url(self, refund_no: str) -> str | None:
        """For webhooks: the refund's notify_url, else its order's (None: the app's default applies)."""
        return await refunds.refund_notify_url(self.deps, refund_no)

    async def query_pending_refunds(self) -> int:
        return await refunds.query_pending_refunds(self.deps)

    async def query_stuck_orders(self) -> int:
        return await jobs.query_stuck_orders(self.deps)

    async def create_split_receiver(self, app: AppAuth, cmd: SplitReceiverCreate) -> SplitReceiverView:
        return await splits.create_receiver(self.deps, app, cmd)

    async def create_split(self, app: AppAuth, order_no: str, cmd: SplitCreate) -> tuple[SplitView, bool]:
        return await splits.create_split(self.deps, app, order_no, cmd)

    async def list_splits(self, app_id: str, order_no: str) -> list[SplitView]:
        return await splits.list_splits(self.deps, app_id, order_no)

    async def finish_splits(self, app: AppAuth, order_no: str) -> PayOrderView:
        return await splits.finish(self.deps, app, order_no)

    async def poll_splits(self) -> int:
        """The splits job: PENDING splits asked about."""
        return await splits.poll_splits(self.deps)

    async def poll_barcodes(self) -> int:
        """The barcode job: unconfirmed barcode payments asked about, reversed after their window."""
        return await barcode.poll_barcodes(self.deps)

    async def close_expired_orders(self) -> int:
        return await jobs.close_expired_orders(self.deps)

    async def start_cashier(self, token: str, wallet: str, openid: str | None, *, in_app: bool = False) -> CashierStart:
        return await create.start_cashier(self.deps, token, wallet, openid, in_app=in_app)

    async def cashier_order(self, token: str) -> PayOrderView:
        async with self.deps.db.uow() as uow:
            order = await repo.by_cashier_token(uow.session, token)
        if order is None:
            raise OrderNotFound("unknown cashier link")
        return order_view(order)

    async def cashier_view(self, token: str) -> CashierOrderView:
        """The order of a cashier link with its merchant and the merchant's `return_url`, for the page."""
        async with self.deps.db.uow() as uow:
            order = await repo.by_cashier_token(uow.session, token)
        if order is None:
            raise OrderNotFound("unknown cashier link")
        return CashierOrderView(order=order_view(order), mch_no=order.mch_no, return_url=order.return_url)

    # --- for reconciliation ---------------------------------------------------------------------------------

    @staticmethod
    def recon_payments(account_id: str, start: datetime, end: datetime) -> Select[Any]:
        """SUCCEEDED payments of an account paid in [start, end) as columns (kind, ref, order_no,
        channel_trade_no, amount, fee, occurred_at); fee is the channel cost snapshot."""
        return reconciliation.payments_query(account_id, start, end)

    @staticmethod
    def recon_refunds(account_id: str, start: datetime, end: datetime) -> Select[Any]:
        """SUCCEEDED refunds of an account in [start, end), same columns; fee is the cost returned pro rata."""
        return reconciliation.refunds_query(account_id, start, end)

    async def confirm_from_channel(self, order_no: str, channel_account_id: str) -> bool:
        """Queries the channel (call with no unit of work open); applies a confirmed payment the normal way."""
        return await reconciliation.confirm_from_channel(self.deps, order_no, channel_account_id)

    async def list_anomalies(self, after: str | None, limit: int, kind: str | None = None) -> list[AnomalyView]:
        return await reconciliation.list_anomalies(self.deps, after, limit, kind)

    async def get_anomaly(self, anomaly_id: str) -> AnomalyView | None:
        return await reconciliation.get_anomaly(self.deps, anomaly_id)

    # --- for the operator console ---------------------------------------------------------------------------

    async def lookup(self, number: str, limit: int = 20) -> OrderLookup:
        """Orders and refunds named by any of their numbers (ours, the merchant's or the channel's)."""
        return await lookup.lookup(self.deps, number, limit)

    async def hourly_volume(self, hours: int = 24) -> list[HourlyVolume]:
        """Per channel and UTC hour: orders created, succeeded, and the succeeded amount (fen)."""
        return await lookup.hourly_volume(self.deps, hours)
