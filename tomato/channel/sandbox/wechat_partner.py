"""WeChat Pay partner (服务商) mode in the simulator: providers acting for the sub-merchants they are authorized for.

A provider registers like a direct merchant (its `sp_mchid` signs every request); `register_sub_merchant` records
an authorization (受理关系) for a `sub_mchid`, with the sub-merchant's `sub_appid` if it has one. Rules kept:
- the partner APIs (create, query, close under `/v3/pay/partner/transactions/…`; refunds and the trade bill with
  `sub_mchid`) answer a `sub_mchid` not authorized for the calling `sp_mchid` with WeChat's signed 403 `NO_AUTH`
  (受理关系不存在), and an `sp_mchid` other than the Authorization's with 400 `PARAM_ERROR`;
- a trade belongs to its (sp_mchid, sub_mchid): another sub-merchant's query/close says `ORDER_NOT_EXIST`, its
  refund and refund query `RESOURCE_NOT_EXISTS`, as for a trade that does not exist;
- answers and notifies carry `sp_appid`, `sp_mchid`, `sub_appid`?, `sub_mchid` and payer `sp_openid`/`sub_openid`
  in place of `appid`, `mchid`, `openid`; notifies are sealed with the provider's APIv3 key;
- the trade bill for a provider without `sub_mchid` lists every sub-merchant's rows (`特约商户号` filled), with
  `sub_mchid` that one's only.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

from fastapi import Response

from tomato.channel.sandbox.state import SimTrade, china_date
from tomato.channel.sandbox.wechat import SIM_OPENID, Body, WxError, _text

if TYPE_CHECKING:
    from tomato.channel.sandbox.wechat import WechatSimulator, _Call

_CREATE = re.compile(r"/v3/pay/partner/transactions/(native|jsapi|h5)")
_QUERY = re.compile(r"/v3/pay/partner/transactions/(out-trade-no|id)/([^/]+)")
_CLOSE = re.compile(r"/v3/pay/partner/transactions/out-trade-no/([^/]+)/close")
_REFUND = re.compile(r"/v3/refund/domestic/refunds/([^/]+)")
_REFUNDS = "/v3/refund/domestic/refunds"
_BILL = "/v3/bill/tradebill"


def owner_key(sp_mchid: str, sub_mchid: str) -> str:
    """The book's merchant id of a partner trade: trades belong to the (provider, sub-merchant) pair."""
    return f"{sp_mchid}/{sub_mchid}"


@dataclass(frozen=True)
class PartnerCall:
    """One partner request as the simulator saw it (tests check who each call spoke for)."""

    method: str
    path: str
    sp_mchid: str  # the Authorization's mchid
    sub_mchid: str | None


class PartnerDesk:
    """The partner half of `WechatSimulator`: authorizations, the partner APIs, partner notifies and bills."""

    def __init__(self, sim: WechatSimulator) -> None:
        self._sim = sim
        self._subs: dict[str, dict[str, str | None]] = {}  # sp_mchid → sub_mchid → sub_appid
        self.calls: deque[PartnerCall] = deque(maxlen=1000)  # the latest partner calls, newest last

    def register_sub_merchant(self, sp_mchid: str, sub_mchid: str, sub_appid: str | None = None) -> None:
        """KeyError when `sp_mchid` is not a registered merchant, ValueError for a malformed `sub_mchid`."""
        if sp_mchid not in self._sim.book.merchants:
            raise KeyError(f"unknown provider {sp_mchid}")
        if not sub_mchid.isdigit() or sub_mchid == sp_mchid:
            raise ValueError("sub_mchid must be another merchant number")
        self._subs.setdefault(sp_mchid, {})[sub_mchid] = sub_appid or None

    def is_provider(self, mchid: str) -> bool:
        return bool(self._subs.get(mchid))

    @staticmethod
    def owns(trade: SimTrade) -> bool:
        return "sp_mchid" in trade.extra

    # --- dispatch -----------------------------------------------------------------------------------------

    def dispatch(self, method: str, path: str, call: _Call) -> Response | None:
        """The answer to a partner request, or None when the request is a direct merchant's."""
        sim = self._sim
        if method == "POST" and (m := _CREATE.fullmatch(path)):
            return sim._respond(200, self._create(call, m.group(1), self._identify(call, method, path, call.body)))
        if method == "POST" and (m := _CLOSE.fullmatch(path)):
            sub = self._identify(call, method, path, call.body)
            return sim.close_trade(owner_key(call.mchid, sub), m.group(1))
        if method == "GET" and (m := _QUERY.fullmatch(path)):
            sub = self._identify(call, method, path, call.query)
            by_id = m.group(1) == "id"
            key = owner_key(call.mchid, sub)
            trade = sim.book.find(key, None if by_id else m.group(2), m.group(2) if by_id else None)
            if trade is None:
                raise WxError(404, "ORDER_NOT_EXIST", "订单不存在")
            return sim._respond(200, self.transaction(trade))
        if method == "POST" and path == _REFUNDS and "sub_mchid" in call.body:
            sub = self._authorized(call, method, path, _text(call.body, "sub_mchid"))
            identity = {"sp_mchid": call.mchid, "sub_mchid": sub}
            return sim._respond(200, sim._refund(call, owner_key(call.mchid, sub), identity))
        if method == "GET" and (m := _REFUND.fullmatch(path)) and "sub_mchid" in call.query:
            sub = self._authorized(call, method, path, _text(call.query, "sub_mchid"))
            refund = sim._refunds.get((owner_key(call.mchid, sub), m.group(1)))
            if refund is None:
                raise WxError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return sim._respond(200, sim._refund_node(refund))
        if method == "GET" and path == _BILL and ("sub_mchid" in call.query or self.is_provider(call.mchid)):
            sub_mchid = call.query.get("sub_mchid")
            if sub_mchid is not None:
                self._authorized(call, method, path, sub_mchid)
            else:
                self.calls.append(PartnerCall(method, path, call.mchid, None))  # the provider's whole bill
            return sim._respond(200, self._trade_bill(call, sub_mchid))
        return None

    def _identify(self, call: _Call, method: str, path: str, fields: Body | dict[str, str]) -> str:
        """Check `sp_mchid` is the caller's and `sub_mchid` authorized; record the call; the sub_mchid."""
        if fields.get("sp_mchid") != call.mchid:
            raise WxError(400, "PARAM_ERROR", "sp_mchid does not match the Authorization")
        return self._authorized(call, method, path, _text(fields, "sub_mchid"))

    def _authorized(self, call: _Call, method: str, path: str, sub_mchid: str) -> str:
        self.calls.append(PartnerCall(method, path, call.mchid, sub_mchid))
        if sub_mchid not in self._subs.get(call.mchid, {}):
            raise WxError(403, "NO_AUTH", "受理关系不存在")
        return sub_mchid

    # --- APIs ---------------------------------------------------------------------------------------------

    def _create(self, call: _Call, kind: str, sub_mchid: str) -> Body:
        b = call.body
        sp_appid = _text(b, "sp_appid")
        sub_appid = b.get("sub_appid")
        registered = self._subs[call.mchid][sub_mchid]
        if sub_appid is not None and (not isinstance(sub_appid, str) or sub_appid != registered):
            raise WxError(400, "PARAM_ERROR", "sub_appid与sub_mchid不匹配")
        # `openid` is the payer under sp_appid (sp_openid), `sub_openid` under sub_appid when there is one
        extra = {"kind": kind, "appid": sp_appid, "sp_mchid": call.mchid, "sub_mchid": sub_mchid, "openid": SIM_OPENID}
        if sub_appid:
            extra.update(sub_appid=sub_appid, sub_openid=SIM_OPENID)
        if kind == "jsapi":
            given = b.get("payer")
            payer: Body = given if isinstance(given, dict) else {}
            if "sub_openid" in payer and not sub_appid:
                raise WxError(400, "PARAM_ERROR", "sub_openid需与sub_appid对应")
            if "sub_openid" in payer:
                extra["sub_openid"] = _text(payer, "sub_openid")
            else:
                extra["openid"] = _text(payer, "sp_openid")
        return self._sim.prepay(call, kind, owner_key(call.mchid, sub_mchid), extra)

    def transaction(self, trade: SimTrade) -> Body:
        """The partner view of a trade: provider and sub-merchant identities, the payer's openid by its app."""
        node = self._sim._transaction(trade)
        del node["appid"], node["mchid"]
        extra = trade.extra
        identity: Body = {"sp_appid": extra["appid"], "sp_mchid": extra["sp_mchid"]}
        if extra.get("sub_appid"):
            identity["sub_appid"] = extra["sub_appid"]
        identity["sub_mchid"] = extra["sub_mchid"]
        if "payer" in node:
            node["payer"] = {"sp_openid": extra["openid"]}
            if "sub_openid" in extra:
                node["payer"]["sub_openid"] = extra["sub_openid"]
        return {**identity, **node}

    def notify_payment(self, trade: SimTrade) -> None:
        self._sim._notify(trade.extra["sp_mchid"], trade.notify_url, "TRANSACTION.SUCCESS", "支付成功",
                          "transaction", self.transaction(trade))

    def _trade_bill(self, call: _Call, sub_mchid: str | None) -> Body:
        """One sub-merchant's bill, or (no `sub_mchid`) the provider's own rows and every sub-merchant's."""
        try:
            day = date.fromisoformat(call.query.get("bill_date", ""))
        except ValueError:
            raise WxError(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD") from None
        if call.query.get("bill_type", "ALL") != "ALL":
            raise WxError(400, "PARAM_ERROR", "the sandbox serves bill_type=ALL only")
        subs = [sub_mchid] if sub_mchid is not None else sorted(self._subs.get(call.mchid, {}))
        owners = {owner_key(call.mchid, sub): sub for sub in subs}
        if sub_mchid is None:
            owners[call.mchid] = "0"
        book, state = self._sim.book, self._sim._state
        active = any(
            t.merchant_id in owners
            and ((t.paid_at is not None and china_date(t.paid_at) == day)
                 or any(china_date(r.created_at) == day for r in t.refunds.values()))
            for t in book.trades.values()
        )
        if not active:
            raise WxError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        rows = [row for owner in owners for row in state.statement_rows(self._sim.channel, owner, day)]
        rows.sort(key=lambda row: row.at)
        lines = [
            replace(self._sim._bill_line(row), mchid=call.mchid, sub_mchid=owners[row.trade.merchant_id])
            for row in rows
        ]
        return self._sim.bill_answer(call, lines)
