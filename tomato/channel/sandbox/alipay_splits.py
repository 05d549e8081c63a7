"""Profit sharing (分账) at the Alipay simulator (docs/channels.md, "Profit sharing").

- `alipay.trade.royalty.relation.bind` binds receivers to the merchant the request acts for (a sub-merchant with an
  `app_auth_token`); binding one again is SUCCESS.
- `alipay.trade.order.settle` splits a paid trade created with `extend_params.royalty_freeze` "true", in Alipay's
  synchronous mode (all receivers or none): only to bound receivers (`ACQ.ROYALTY_RECEIVER_INVALID`), never more in
  all than `max_ratio` % of the trade (Alipay's default 30 %) nor what the trade still holds
  (`ACQ.ALLOC_AMOUNT_VALIDATE_ERROR`); a trade not frozen, or released already, is refused
  `ACQ.TRADE_SETTLE_ERROR`. `extend_params.royalty_finish` "true" releases the rest (with or without shares);
  a resent request (same out_request_no, same shares) answers as the first did, other shares are
  `ACQ.DISCORDANT_REPEAT_REQUEST`.
- `processing_next` (a test hook) makes the next settles answer `ACQ.SYSTEM_ERROR` with the split left PROCESSING;
  its first `alipay.trade.order.settle.query` shows PROCESSING, the next one SUCCESS.
- `alipay.trade.refund` takes split money back when it carries `refund_royalty_parameters` (`trans_out` = the
  receiver; more than it received is `ACQ.ALLOC_AMOUNT_VALIDATE_ERROR`); without them Alipay refunds anyway (from
  the merchant's balance, or pro rata from receivers for face-to-face trades), and so does the simulator (it does
  not model the pro rata take-back: the receivers' takings stay as they were).
Alipay sends no notify for a synchronous split: the platform learns by the answer or by query.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tomato.channel.adapters.alipay import codec
from tomato.channel.sandbox.alipay import AlipaySimulator, BizError, Node, _amount, _str
from tomato.channel.sandbox.state import SandboxState, SimTrade, TradeState

DEFAULT_MAX_RATIO = 30  # % of the trade that may be split in all (Alipay's default, alipay.trade.royalty.rate.query)
RECEIVER_TYPES = frozenset({"userId", "loginName"})
_MISSING = "Missing Required Arguments"

Share = tuple[str, str, int]  # (trans_in_type, trans_in, fen)


@dataclass
class SimSplit:
    out_request_no: str
    settle_no: str
    shares: tuple[Share, ...]
    finish: bool
    state: str  # SUCCESS | PROCESSING
    at: datetime


@dataclass
class TradeSplits:
    splits: dict[str, SimSplit] = field(default_factory=dict)  # by out_request_no
    received: dict[str, int] = field(default_factory=dict)  # receiver account → fen split to it, not taken back
    finished: bool = False

    @property
    def split_total(self) -> int:
        return sum(amount for s in self.splits.values() for _, _, amount in s.shares)


class AlipaySplits:
    def __init__(self, sim: AlipaySimulator, state: SandboxState) -> None:
        self._sim = sim
        self._state = state
        self.bound: dict[str, dict[str, dict[str, str]]] = {}  # merchant → receiver account → receiver entry
        self.trades: dict[str, TradeSplits] = {}  # by channel trade number
        self.max_ratio = DEFAULT_MAX_RATIO
        self.processing_next = 0  # test hook: the next N settles stay PROCESSING (answered ACQ.SYSTEM_ERROR)
        self._plain_refund = sim._methods["alipay.trade.refund"]

    def methods(self) -> dict[str, Any]:
        return {
            "alipay.trade.royalty.relation.bind": self.bind,
            "alipay.trade.order.settle": self.settle,
            "alipay.trade.order.settle.query": self.query,
            "alipay.trade.refund": self.refund,
        }

    def of(self, trade: SimTrade) -> TradeSplits:
        return self.trades.setdefault(trade.channel_trade_no, TradeSplits())

    # --- alipay.trade.royalty.relation.bind ---------------------------------------------------------------------

    def bind(self, merchant_id: str, params: dict[str, str], biz: Node) -> Node:
        receivers = biz.get("receiver_list")
        if not _str(biz, "out_request_no") or not isinstance(receivers, list) or not receivers:
            raise BizError("isv.missing-parameter", "out_request_no and receiver_list are required", "40001", _MISSING)
        entries: list[dict[str, str]] = []
        for entry in receivers:
            if not isinstance(entry, dict) or entry.get("type") not in RECEIVER_TYPES:
                raise BizError("ACQ.INVALID_RECEIVER_TYPE", "分账收款方类型参数非法")
            account = entry.get("account")
            if not isinstance(account, str) or not account:
                raise BizError("ACQ.INVALID_PARAMETER", "receiver account is required")
            if entry["type"] == "loginName" and not entry.get("name"):
                raise BizError("ACQ.INVALID_PARAMETER", "a loginName receiver needs its name")
            entries.append({k: str(v) for k, v in entry.items()})
        book = self.bound.setdefault(merchant_id, {})
        for entry in entries:
            book[entry["account"]] = entry
        return {"code": "10000", "msg": "Success", "result_code": "SUCCESS"}

    # --- alipay.trade.order.settle ------------------------------------------------------------------------------

    def settle(self, merchant_id: str, params: dict[str, str], biz: Node) -> Node:
        out_request_no, trade_no = _str(biz, "out_request_no"), _str(biz, "trade_no")
        if not out_request_no or not trade_no or not isinstance(biz.get("royalty_parameters"), list):
            raise BizError("isv.missing-parameter", "out_request_no, trade_no and royalty_parameters are required",
                           "40001", _MISSING)  # fmt: skip
        trade = self._trade(merchant_id, trade_no)
        finish = isinstance(biz.get("extend_params"), dict) and biz["extend_params"].get("royalty_finish") == "true"
        shares = self._shares(merchant_id, biz["royalty_parameters"])
        book = self.of(trade)
        done = book.splits.get(out_request_no)
        if done is not None:
            if (done.shares, done.finish) != (shares, finish):
                raise BizError("ACQ.DISCORDANT_REPEAT_REQUEST", "请求被篡改: same out_request_no, other details")
            if done.state == "PROCESSING":
                raise BizError("ACQ.SYSTEM_ERROR", "系统错误", "20000", "Service Currently Unavailable")
            return self._settled(trade, done)
        if trade.state is not TradeState.PAID:
            raise BizError("ACQ.TRADE_STATUS_ERROR", "trade is not paid")
        if trade.extra.get("royalty_freeze") != "true":
            raise BizError("ACQ.TRADE_SETTLE_ERROR", "分账处理失败: the trade was not created with royalty_freeze")
        if book.finished:
            raise BizError("ACQ.TRADE_SETTLE_ERROR", "分账处理失败: the trade's royalty is finished")
        if not shares and not finish:
            raise BizError("ACQ.INVALID_PARAMETER", "royalty_parameters is empty")
        wanted = sum(amount for _, _, amount in shares)
        limit = min(trade.amount * self.max_ratio // 100, trade.amount - trade.refunded) - book.split_total
        if wanted > limit:
            raise BizError("ACQ.ALLOC_AMOUNT_VALIDATE_ERROR", "分账金额超过最大可分账金额")
        now = self._state.clock.now()
        settle_no = now.astimezone(codec.BEIJING).strftime("%Y%m%d") + "0025300" + f"{secrets.randbelow(10**17):017d}"
        split = SimSplit(out_request_no, settle_no, shares, finish, "SUCCESS", now)
        book.splits[out_request_no] = split
        if self.processing_next > 0:
            self.processing_next -= 1
            split.state = "PROCESSING"
            raise BizError("ACQ.SYSTEM_ERROR", "系统错误", "20000", "Service Currently Unavailable")
        self._complete(book, split)
        return self._settled(trade, split)

    def _trade(self, merchant_id: str, trade_no: str) -> SimTrade:
        trade = self._sim.book.find(merchant_id, None, trade_no)
        if trade is None or trade.state is TradeState.UNSCANNED:
            raise BizError("ACQ.TRADE_NOT_EXIST", "trade does not exist")
        return trade

    def _shares(self, merchant_id: str, raw: list[Any]) -> tuple[Share, ...]:
        bound = self.bound.get(merchant_id, {})
        shares: list[Share] = []
        for item in raw:
            if not isinstance(item, dict) or item.get("royalty_type", "transfer") != "transfer":
                raise BizError("ACQ.INVALID_PARAMETER", "royalty_type must be transfer")
            kind, account = item.get("trans_in_type", "userId"), _str(item, "trans_in")
            if kind not in RECEIVER_TYPES or not account:
                raise BizError("ACQ.INVALID_PARAMETER", "trans_in and trans_in_type are required")
            if account not in bound or bound[account]["type"] != kind:
                raise BizError("ACQ.ROYALTY_RECEIVER_INVALID", "收入方不在分账关系内")
            shares.append((kind, account, _amount(item, "amount")))
        return tuple(shares)

    def _complete(self, book: TradeSplits, split: SimSplit) -> None:
        split.state = "SUCCESS"
        for _, account, amount in split.shares:
            book.received[account] = book.received.get(account, 0) + amount
        if split.finish:
            book.finished = True

    @staticmethod
    def _settled(trade: SimTrade, split: SimSplit) -> Node:
        return {"code": "10000", "msg": "Success", "trade_no": trade.channel_trade_no, "settle_no": split.settle_no}

    # --- alipay.trade.order.settle.query ------------------------------------------------------------------------

    def query(self, merchant_id: str, params: dict[str, str], biz: Node) -> Node:
        found = self._find_split(merchant_id, biz)
        if found is None:
            raise BizError("ACQ.TRADE_NOT_EXIST", "no such settle request")
        trade, book, split = found
        node: Node = {
            "code": "10000", "msg": "Success", "out_request_no": split.out_request_no,
            "operation_dt": codec.format_beijing(split.at), "royalty_detail_list": [
                {
                    "operation_type": "transfer", "execute_dt": codec.format_beijing(split.at),
                    "trans_out": trade.merchant_id, "trans_out_type": "userId", "trans_in": account,
                    "trans_in_type": kind, "amount": codec.yuan(amount), "state": split.state,
                    "detail_id": f"{split.settle_no}{n:04d}",
                }
                for n, (kind, account, amount) in enumerate(split.shares)
            ],
        }  # fmt: skip
        if split.state == "PROCESSING":  # seen processing once: done by the next query
            self._complete(book, split)
        return node

    def _find_split(self, merchant_id: str, biz: Node) -> tuple[SimTrade, TradeSplits, SimSplit] | None:
        settle_no, out_request_no, trade_no = _str(biz, "settle_no"), _str(biz, "out_request_no"), _str(biz, "trade_no")
        if not settle_no and not (out_request_no and trade_no):
            raise BizError("isv.missing-parameter", "settle_no, or out_request_no and trade_no", "40001", _MISSING)
        for key, book in self.trades.items():
            if trade_no and key != trade_no:
                continue
            trade = self._sim.book.find(merchant_id, None, key)
            if trade is None:
                continue
            for split in book.splits.values():
                if split.settle_no == settle_no or (not settle_no and split.out_request_no == out_request_no):
                    return trade, book, split
        return None

    # --- alipay.trade.refund with refund_royalty_parameters -----------------------------------------------------

    def refund(self, merchant_id: str, params: dict[str, str], biz: Node) -> Node:
        raw = biz.get("refund_royalty_parameters")
        if not raw:
            return self._plain_refund(merchant_id, params, biz)
        if not isinstance(raw, list):
            raise BizError("ACQ.INVALID_PARAMETER", "refund_royalty_parameters must be a list")
        trade = self._sim.book.find(merchant_id, _str(biz, "out_trade_no"), _str(biz, "trade_no"))
        book = self.of(trade) if trade is not None else TradeSplits()
        back: dict[str, int] = {}
        for item in raw:
            account = _str(item, "trans_out") if isinstance(item, dict) else None
            if not account:
                raise BizError("ACQ.INVALID_PARAMETER", "trans_out is required")
            back[account] = back.get(account, 0) + _amount(item, "amount")
        refund_no = _str(biz, "out_request_no") or (trade.out_trade_no if trade else "")
        replay = trade is not None and refund_no in trade.refunds
        if not replay and any(amount > book.received.get(account, 0) for account, amount in back.items()):
            raise BizError("ACQ.ALLOC_AMOUNT_VALIDATE_ERROR", "退分账金额超限")
        node = self._plain_refund(merchant_id, params, biz)
        if not replay:
            for account, amount in back.items():
                book.received[account] -= amount
        return node
