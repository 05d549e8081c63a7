"""WeChat Pay profit sharing (分账, API v3) in the simulator: receivers, splits, their release and returns.

Rules kept (codes and messages as WeChat answers them, docs/channels.md "Profit sharing"):
- receivers are bound per merchant (partner mode: per provider and sub-merchant) with `receivers/add`; a
  `MERCHANT_ID` needs its `name`, which must decrypt (RSA-OAEP) with the platform key the `Wechatpay-Serial`
  header names, else 400 `PARAM_ERROR`;
- a split needs a paid trade created with `settle_info.profit_sharing` (else 400 `INVALID_REQUEST`
  非分账订单不支持分账), bound receivers only (400 `INVALID_REQUEST` 分账接收方关系不存在), at most 30 % of the
  order (`MAX_RATIO`, the default 最大分账比例) to others over all its splits (400 `INVALID_REQUEST`
  分账金额超出最大分账比例) — a share to the merchant itself has no ratio limit — and never more than is still
  unsplit, nor anything once the rest was released (403 `NOT_ENOUGH` 分账金额不足);
- splits finish at once (`FINISHED`, every receiver `SUCCESS`, a receiver in `close_accounts` `CLOSED` with
  `ACCOUNT_ABNORMAL`); with `hold` set they answer `PROCESSING`/`PENDING` and finish on their next query;
- `unfreeze_unsplit` or `orders/unfreeze` releases the rest to the merchant (listed as a receiver entry for it);
- a return takes back at most what the receiver got from that split (400 `INVALID_REQUEST`), `SUCCESS` at once
  (or `PROCESSING` until queried under `hold`); WeChat refunds a split trade from the merchant's balance without
  asking for returns first, and so does the simulator (refunds are not limited by splits);
- each finished share is notified (分账动账通知, `PROFITSHARING.SUCCESS` / `PROFITSHARING.CLOSED`) to the URL the
  merchant set in its console (`set_notify_url`), sealed with its APIv3 key; no URL, no notify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Response

from tomato.channel.adapters.wechat import codec, signing
from tomato.channel.sandbox.state import SimTrade, TradeState
from tomato.channel.sandbox.wechat import Body, WxError, _text, _wx_id
from tomato.channel.sandbox.wechat_partner import owner_key

if TYPE_CHECKING:
    from tomato.channel.sandbox.wechat import WechatSimulator, _Call

MAX_RATIO = 3000  # 万分比: 30 % of the order may go to others (WeChat's default maximum)
MAX_RECEIVERS = 50
RECEIVER_TYPES = frozenset({"MERCHANT_ID", "PERSONAL_OPENID", "PERSONAL_SUB_OPENID"})
RELATION_TYPES = frozenset({"SERVICE_PROVIDER", "STORE", "STAFF", "STORE_OWNER", "PARTNER", "HEADQUARTER", "BRAND",
                            "DISTRIBUTOR", "USER", "SUPPLIER", "CUSTOM"})
_ORDER = re.compile(r"/v3/profitsharing/orders/([^/]+)")
_RETURN = re.compile(r"/v3/profitsharing/return-orders/([^/]+)")
_CONFIG = re.compile(r"/v3/profitsharing/merchant-configs/([^/]+)")
_AMOUNTS = re.compile(r"/v3/profitsharing/transactions/([^/]+)/amounts")


@dataclass
class _Share:
    type: str
    account: str
    amount: int  # fen
    description: str
    detail_id: str
    created_at: datetime
    result: str = "PENDING"
    fail_reason: str | None = None
    finished_at: datetime | None = None


@dataclass
class _Order:
    owner: str  # the book's merchant id of the trade (partner: provider/sub-merchant)
    own: str  # the splitting merchant's number (mchid, or sub_mchid)
    identity: Body  # what answers and notifies name the merchant by
    trade: SimTrade
    out_order_no: str
    order_id: str
    shares: list[_Share]
    fingerprint: tuple[Any, ...]
    state: str = "PROCESSING"


@dataclass
class _Return:
    order: _Order
    out_return_no: str
    return_id: str
    return_mchid: str
    amount: int
    description: str
    created_at: datetime
    result: str = "PROCESSING"
    finished_at: datetime | None = None


class SplitDesk:
    """The profit-sharing half of `WechatSimulator`; `hold` and `close_accounts` are the tests' levers."""

    def __init__(self, sim: WechatSimulator) -> None:
        self.sim = sim
        self.hold = False  # new splits and returns answer PROCESSING and finish on their next query
        self.close_accounts: set[str] = set()  # receivers whose shares close (fail_reason ACCOUNT_ABNORMAL)
        self.max_ratio = MAX_RATIO
        self._receivers: dict[str, dict[tuple[str, str], str | None]] = {}  # owner → (type, account) → name
        self._orders: dict[tuple[str, str], _Order] = {}  # (owner, out_order_no) → split or unfreeze
        self._returns: dict[tuple[str, str], _Return] = {}  # (owner, out_return_no) → return
        self._released: set[int] = set()  # id() of trades whose rest went back to the merchant
        self._notify_urls: dict[str, str] = {}  # mchid (the provider's in partner mode) → URL

    # --- console and hooks ----------------------------------------------------------------------------------

    def set_notify_url(self, mchid: str, url: str) -> None:
        """The 分账动账通知 URL the merchant (a provider for its sub-merchants) set in its console."""
        self._notify_urls[mchid] = url

    @staticmethod
    def mark_profit_sharing(trade: SimTrade, settle_info: Any) -> None:
        """Called on create: `settle_info.profit_sharing` true freezes the payment for splitting."""
        if isinstance(settle_info, dict) and settle_info.get("profit_sharing") is True:
            trade.extra["profit_sharing"] = "true"

    def bound(self, owner: str) -> dict[tuple[str, str], str | None]:
        """The receivers bound by `owner` (a mchid, or `owner_key(sp_mchid, sub_mchid)`): (type, account) → name."""
        return dict(self._receivers.get(owner, {}))

    def received(self, order_no: str, account: str, owner: str) -> int:
        """What `account` holds from split `order_no` now: its successful shares less what was returned."""
        order = self._orders[(owner, order_no)]
        got = sum(s.amount for s in order.shares if s.account == account and s.result == "SUCCESS")
        back = sum(r.amount for r in self._returns.values()
                   if r.order is order and r.return_mchid == account and r.result != "FAILED")
        return got - back

    # --- dispatch -----------------------------------------------------------------------------------------

    def dispatch(self, method: str, path: str, call: _Call) -> Response | None:
        if not path.startswith("/v3/profitsharing/"):
            return None
        fields = call.body if method == "POST" else call.query
        owner, own, identity = self._whose(call, method, path, fields)
        if method == "POST" and path == "/v3/profitsharing/receivers/add":
            return self._respond(self._add_receiver(call, owner, identity))
        if method == "POST" and path == "/v3/profitsharing/receivers/delete":
            key = (_text(call.body, "type"), _text(call.body, "account"))
            self._receivers.get(owner, {}).pop(key, None)
            return self._respond({**identity, "type": key[0], "account": key[1]})
        if method == "POST" and path == "/v3/profitsharing/orders":
            return self._respond(self._node(self._split(call, owner, own, identity)))
        if method == "POST" and path == "/v3/profitsharing/orders/unfreeze":
            return self._respond(self._node(self._unfreeze(call, owner, own, identity)))
        if method == "POST" and path == "/v3/profitsharing/return-orders":
            return self._respond(self._return_node(self._return(call, owner)))
        if method == "GET" and (m := _ORDER.fullmatch(path)):
            order = self._orders.get((owner, m.group(1)))
            if order is None or order.trade.channel_trade_no != call.query.get("transaction_id"):
                raise WxError(404, "RESOURCE_NOT_EXISTS", "记录不存在")
            self._settle(order)
            return self._respond(self._node(order))
        if method == "GET" and (m := _RETURN.fullmatch(path)):
            ret = self._returns.get((owner, m.group(1)))
            if ret is None or ret.order.out_order_no != call.query.get("out_order_no"):
                raise WxError(404, "RESOURCE_NOT_EXISTS", "记录不存在")
            if ret.result == "PROCESSING":
                self._finish_return(ret)
            return self._respond(self._return_node(ret))
        if method == "GET" and (m := _AMOUNTS.fullmatch(path)):
            trade = self._trade(owner, m.group(1))
            return self._respond({"transaction_id": trade.channel_trade_no, "unsplit_amount": self._unsplit(trade)})
        if method == "GET" and (m := _CONFIG.fullmatch(path)):
            sub = self.sim.partner._authorized(call, method, path, m.group(1))  # partner mode only
            return self._respond({"sub_mchid": sub, "max_ratio": self.max_ratio})
        raise WxError(404, "NOT_FOUND", f"no API {method} {path}")

    def _respond(self, body: Body) -> Response:
        return self.sim._respond(200, body)

    def _whose(self, call: _Call, method: str, path: str, fields: Any) -> tuple[str, str, Body]:
        """(the book's owner, the splitting merchant's number, its identity in answers) of a request."""
        if "sub_mchid" not in fields:
            return call.mchid, call.mchid, {}
        sub = self.sim.partner._authorized(call, method, path, _text(fields, "sub_mchid"))
        return owner_key(call.mchid, sub), sub, {"sub_mchid": sub}

    # --- receivers ----------------------------------------------------------------------------------------

    def _add_receiver(self, call: _Call, owner: str, identity: Body) -> Body:
        b = call.body
        _text(b, "appid")
        kind, account, relation = _text(b, "type"), _text(b, "account"), _text(b, "relation_type")
        if kind not in RECEIVER_TYPES or relation not in RELATION_TYPES:
            raise WxError(400, "PARAM_ERROR", "type or relation_type is not a known value")
        if relation == "CUSTOM":
            _text(b, "custom_relation")
        if kind == "PERSONAL_SUB_OPENID":
            _text(b, "sub_appid")
        name = None
        if "name" in b:
            if call.serial != self.sim.public_key_id:
                raise WxError(400, "PARAM_ERROR", "Wechatpay-Serial 与加密公钥不匹配")
            try:
                name = signing.decrypt_sensitive(self.sim._key, _text(b, "name"))
            except ValueError:
                raise WxError(400, "PARAM_ERROR", "name 解密失败") from None
        if kind == "MERCHANT_ID" and not (account.isdigit() and name):
            raise WxError(400, "PARAM_ERROR", "MERCHANT_ID 需要商户号和商户全称 name")
        self._receivers.setdefault(owner, {})[(kind, account)] = name  # adding again updates: still bound
        answer: Body = {**identity, "type": kind, "account": account, "relation_type": relation}
        if "name" in b:
            answer["name"] = b["name"]
        if relation == "CUSTOM":
            answer["custom_relation"] = b["custom_relation"]
        return answer

    # --- splits -------------------------------------------------------------------------------------------

    def _trade(self, owner: str, transaction_id: str) -> SimTrade:
        trade = self.sim.book.find(owner, None, transaction_id)
        if trade is None:
            raise WxError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        return trade

    def _live_shares(self, trade: SimTrade) -> list[tuple[_Order, _Share]]:
        return [(o, s) for o in self._orders.values() if o.trade is trade for s in o.shares if s.result != "CLOSED"]

    def _unsplit(self, trade: SimTrade) -> int:
        if id(trade) in self._released:
            return 0
        return trade.amount - trade.refunded - sum(s.amount for _, s in self._live_shares(trade))

    def _splittable(self, trade: SimTrade) -> None:
        if trade.state is not TradeState.PAID:
            raise WxError(400, "INVALID_REQUEST", "订单处理中，暂时无法分账，请稍后再试")
        if trade.extra.get("profit_sharing") != "true":
            raise WxError(400, "INVALID_REQUEST", "非分账订单不支持分账")

    def _split(self, call: _Call, owner: str, own: str, identity: Body) -> _Order:
        b = call.body
        _text(b, "appid")
        trade = self._trade(owner, _text(b, "transaction_id"))
        out_order_no = _text(b, "out_order_no")
        unfreeze = b.get("unfreeze_unsplit")
        given = b.get("receivers")
        if not isinstance(unfreeze, bool) or not isinstance(given, list) or not 0 < len(given) <= MAX_RECEIVERS:
            raise WxError(400, "PARAM_ERROR", "receivers (1–50) and unfreeze_unsplit are required")
        wanted = [_wanted(r) for r in given]
        fingerprint = (trade.channel_trade_no, tuple(wanted), unfreeze)
        if (done := self._orders.get((owner, out_order_no))) is not None:  # one out_order_no, one request
            if done.fingerprint != fingerprint:
                raise WxError(400, "INVALID_REQUEST", "商户分账单号重复，且请求参数与原请求不一致")
            return done
        self._splittable(trade)
        if id(trade) in self._released:
            raise WxError(403, "NOT_ENOUGH", "分账金额不足")  # the rest went back to the merchant: nothing to split
        bound = self._receivers.get(owner, {})
        if any((kind, account) not in bound and account != own for kind, account, _, _ in wanted):
            raise WxError(400, "INVALID_REQUEST", "分账接收方关系不存在，请检查参数中每个接收方的关系")
        to_others = sum(amount for kind, account, amount, _ in wanted if account != own)
        already = sum(s.amount for _, s in self._live_shares(trade) if s.account != own)
        if already + to_others > trade.amount * self.max_ratio // 10000:
            raise WxError(400, "INVALID_REQUEST", "分账金额超出最大分账比例")
        if sum(w[2] for w in wanted) > self._unsplit(trade):
            raise WxError(403, "NOT_ENOUGH", "分账金额不足")
        now = self.sim._state.clock.now()
        shares = [_Share(kind, account, amount, text, _wx_id("3600", now, 30), now)
                  for kind, account, amount, text in wanted]
        order = _Order(owner, own, identity, trade, out_order_no, _wx_id("3008", now), shares, fingerprint)
        self._orders[(owner, out_order_no)] = order
        if unfreeze:
            self._release(order, "解冻给分账方")
        if not self.hold:
            self._settle(order)
        return order

    def _unfreeze(self, call: _Call, owner: str, own: str, identity: Body) -> _Order:
        b = call.body
        trade = self._trade(owner, _text(b, "transaction_id"))
        out_order_no, description = _text(b, "out_order_no"), _text(b, "description")
        fingerprint = (trade.channel_trade_no, "unfreeze")
        if (done := self._orders.get((owner, out_order_no))) is not None:
            if done.fingerprint != fingerprint:
                raise WxError(400, "INVALID_REQUEST", "商户分账单号重复，且请求参数与原请求不一致")
            return done
        self._splittable(trade)
        if id(trade) in self._released:
            raise WxError(403, "NOT_ENOUGH", "分账金额不足")  # the rest went back already: nothing to unfreeze
        now = self.sim._state.clock.now()
        order = _Order(owner, own, identity, trade, out_order_no, _wx_id("3008", now), [], fingerprint)
        self._orders[(owner, out_order_no)] = order
        self._release(order, description)
        self._settle(order)
        return order

    def _release(self, order: _Order, description: str) -> None:
        """The rest of the trade back to the merchant: an entry for it in the order, no more splits after it."""
        now = self.sim._state.clock.now()
        rest = self._unsplit(order.trade)  # this order's own shares are counted already
        self._released.add(id(order.trade))
        order.shares.append(_Share("MERCHANT_ID", order.own, max(rest, 0), description, _wx_id("3600", now, 30), now,
                                   result="SUCCESS", finished_at=now))

    def _settle(self, order: _Order) -> None:
        """Finish a processing order: each pending share succeeds (or closes) and is notified."""
        if order.state == "FINISHED":
            return
        now = self.sim._state.clock.now()
        order.state = "FINISHED"
        for share in order.shares:
            if share.result != "PENDING":
                continue
            closed = share.account in self.close_accounts
            share.result, share.finished_at = ("CLOSED" if closed else "SUCCESS"), now
            share.fail_reason = "ACCOUNT_ABNORMAL" if closed else None
            self._notify(order, share)

    def _node(self, order: _Order) -> Body:
        receivers = []
        for s in order.shares:
            node: Body = {"amount": s.amount, "description": s.description, "type": s.type, "account": s.account,
                          "result": s.result, "detail_id": s.detail_id, "create_time": codec.format_time(s.created_at)}
            if s.finished_at is not None:
                node["finish_time"] = codec.format_time(s.finished_at)
            if s.fail_reason:
                node["fail_reason"] = s.fail_reason
            receivers.append(node)
        return {**order.identity, "transaction_id": order.trade.channel_trade_no, "out_order_no": order.out_order_no,
                "order_id": order.order_id, "state": order.state, "receivers": receivers}

    # --- returns ------------------------------------------------------------------------------------------

    def _return(self, call: _Call, owner: str) -> _Return:
        b = call.body
        out_return_no, return_mchid = _text(b, "out_return_no"), _text(b, "return_mchid")
        description, amount = _text(b, "description"), b.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise WxError(400, "PARAM_ERROR", "amount must be a positive integer (fen)")
        if (done := self._returns.get((owner, out_return_no))) is not None:  # one out_return_no, one request
            if (done.return_mchid, done.amount) != (return_mchid, amount):
                raise WxError(400, "INVALID_REQUEST", "商户回退单号重复，且请求参数与原请求不一致")
            return done
        order = self._orders.get((owner, str(b.get("out_order_no") or "")))
        if order is None and "order_id" in b:
            order = next((o for o in self._orders.values() if o.owner == owner and o.order_id == b["order_id"]), None)
        if order is None:
            raise WxError(404, "RESOURCE_NOT_EXISTS", "分账单不存在")
        if amount > self.received(order.out_order_no, return_mchid, owner):
            raise WxError(400, "INVALID_REQUEST", "回退金额超过分账接收方可回退金额")
        now = self.sim._state.clock.now()
        ret = _Return(order, out_return_no, _wx_id("3008", now), return_mchid, amount, description, now)
        self._returns[(owner, out_return_no)] = ret
        if not self.hold:
            self._finish_return(ret)
        return ret

    def _finish_return(self, ret: _Return) -> None:
        ret.result, ret.finished_at = "SUCCESS", self.sim._state.clock.now()

    def _return_node(self, r: _Return) -> Body:
        node: Body = {**r.order.identity, "order_id": r.order.order_id, "out_order_no": r.order.out_order_no,
                      "out_return_no": r.out_return_no, "return_id": r.return_id, "return_mchid": r.return_mchid,
                      "amount": r.amount, "description": r.description, "result": r.result,
                      "create_time": codec.format_time(r.created_at)}
        if r.finished_at is not None:
            node["finish_time"] = codec.format_time(r.finished_at)
        return node

    # --- notifies -----------------------------------------------------------------------------------------

    def _notify(self, order: _Order, share: _Share) -> None:
        trade = order.trade
        payer = trade.extra.get("sp_mchid") or trade.merchant_id  # whose console and APIv3 key
        url = self._notify_urls.get(payer)
        if not url:
            return
        identity = {"sp_mchid": payer, **order.identity} if order.identity else {"mchid": payer}
        success = share.result == "SUCCESS"
        self.sim._notify(payer, url, "PROFITSHARING.SUCCESS" if success else "PROFITSHARING.CLOSED",
                         "分账成功" if success else "分账失败", "profitsharing", {
                             **identity, "transaction_id": trade.channel_trade_no, "order_id": order.order_id,
                             "out_order_no": order.out_order_no,
                             "receiver": {"type": share.type, "account": share.account, "amount": share.amount,
                                          "description": share.description},
                             "success_time": codec.format_time(share.finished_at or order.trade.created_at),
                         })


def _wanted(receiver: Any) -> tuple[str, str, int, str]:
    """(type, account, amount, description) of one requested share; PARAM_ERROR when malformed."""
    if not isinstance(receiver, dict):
        raise WxError(400, "PARAM_ERROR", "分账接收方列表格式错误")
    amount = receiver.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise WxError(400, "PARAM_ERROR", "分账接收方列表格式错误: amount must be a positive integer (fen)")
    kind = _text(receiver, "type")
    if kind not in RECEIVER_TYPES:
        raise WxError(400, "PARAM_ERROR", "分账接收方列表格式错误: type")
    return kind, _text(receiver, "account"), amount, _text(receiver, "description")
