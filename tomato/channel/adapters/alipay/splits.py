"""Alipay profit sharing (分账, docs/channels.md "Profit sharing"): request building and answer mapping.

- a trade that may be split is created with `extend_params.royalty_freeze` "true": its money stays frozen in the
  merchant's balance until split or released;
- receivers are bound with `alipay.trade.royalty.relation.bind` (`receiver_list`: type `userId` for a 2088… id,
  `loginName` for a logon id); `result_code` SUCCESS / FAIL;
- a split is `alipay.trade.order.settle` in synchronous mode (no `royalty_mode`): every receiver succeeds or none
  does and the answer is final, so code 10000 is SUCCESS; `extend_params.royalty_finish` "true" releases the rest;
- the rest is released by the same call with no `royalty_parameters` and only `royalty_finish`;
- `alipay.trade.order.settle.query` (out_request_no + trade_no) lists each receiver's `state`: SUCCESS / FAIL /
  PROCESSING;
- Alipay has no stand-alone return: split money comes back only inside `alipay.trade.refund`
  (`refund_royalty_parameters`), so `return_split` answers FAIL REJECTED `RETURN_WITH_REFUND`.
Alipay sends no profit-sharing notify for synchronous splits: the platform learns by query. The adapter does the
I/O (`call` is its signed OpenAPI call); these functions only build and read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tomato.channel.adapters.alipay import codec
from tomato.channel.protocol import (
    ChannelResult,
    ErrorClass,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SubMerchant,
)

BIND_METHOD = "alipay.trade.royalty.relation.bind"
SETTLE_METHOD = "alipay.trade.order.settle"
QUERY_METHOD = "alipay.trade.order.settle.query"
FREEZE_FLAG = {"royalty_freeze": "true"}  # extend_params of a create whose trade may be split
RETURN_WITH_REFUND = "RETURN_WITH_REFUND"
PARTIAL_SPLIT = "PARTIAL_SPLIT"
BIND_FAILED = "BIND_FAILED"
_USER_ID = re.compile(r"2088\d{12}")

Call = Callable[[str, dict[str, Any], SubMerchant | None], Awaitable[dict[str, Any] | ChannelResult]]


def account_type(account: str) -> str:
    """Alipay names a receiver by its user id (2088 + 12 digits) or by its logon id (a phone or an e-mail)."""
    return "userId" if _USER_ID.fullmatch(account) else "loginName"


def refund_royalty_parameters(returns: Sequence[SplitReturnRequest]) -> list[dict[str, str]]:
    """`alipay.trade.refund`'s `refund_royalty_parameters`: each receiver gives its share back (trans_out)."""
    return [
        {
            "royalty_type": "transfer",
            "trans_out_type": account_type(r.receiver.account),
            "trans_out": r.receiver.account,
            "amount": codec.yuan(r.amount),
            "desc": r.description,
        }
        for r in returns
    ]


def bind_request_no(receiver: SplitReceiver) -> str:
    """A stable `out_request_no` (≤ 32 letters/digits) per receiver and sub-merchant: a resent bind is the same."""
    owner = receiver.sub.auth_app_id if receiver.sub and receiver.sub.auth_app_id else ""
    digest = hashlib.sha256(f"{owner}|{receiver.account}".encode()).hexdigest()
    return "B" + digest[:31]


def bind_biz(receiver: SplitReceiver) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": account_type(receiver.account), "account": receiver.account}
    if receiver.name:
        entry["name"] = receiver.name
    entry["memo"] = "profit sharing"
    return {"out_request_no": bind_request_no(receiver), "receiver_list": [entry]}


def bind_result(node: dict[str, Any]) -> ChannelResult:
    """`result_code` SUCCESS = bound (a receiver bound already is bound again); anything else is a refusal."""
    if node.get("result_code") == "SUCCESS":
        return ChannelResult(ResultStatus.SUCCESS, code="SUCCESS")
    code = _opt_str(node.get("result_code")) or BIND_FAILED
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message="royalty relation not bound")


def settle_biz(req: SplitRequest) -> dict[str, Any]:
    """`alipay.trade.order.settle`: our split_no as out_request_no, each share a `transfer` in yuan."""
    biz: dict[str, Any] = {
        "out_request_no": req.split_no,
        "trade_no": req.channel_trade_no,
        "royalty_parameters": [
            {
                "royalty_type": "transfer",
                "trans_in_type": account_type(share.receiver.account),
                "trans_in": share.receiver.account,
                "amount": codec.yuan(share.amount),
                "desc": share.description,
            }
            for share in req.shares
        ],
    }
    if req.finish:
        biz["extend_params"] = {"royalty_finish": "true"}
    return biz


def finish_biz(ref: SplitRef) -> dict[str, Any]:
    """Release what is left: the settle call with no shares and only `royalty_finish` (Alipay's documented way)."""
    return {
        "out_request_no": ref.split_no,
        "trade_no": ref.channel_trade_no,
        "royalty_parameters": [],
        "extend_params": {"royalty_finish": "true"},
    }


def settle_result(node: dict[str, Any], amount: int | None = None) -> ChannelResult:
    """A 10000 answer of a synchronous settle: done for every receiver (Alipay: the answer is the result)."""
    settle_no = _opt_str(node.get("settle_no"))
    return ChannelResult(
        ResultStatus.SUCCESS, message=f"settle_no {settle_no}" if settle_no else None,
        channel_trade_no=_opt_str(node.get("trade_no")), amount=amount,
    )  # fmt: skip


def query_biz(ref: SplitRef) -> dict[str, Any]:
    return {"out_request_no": ref.split_no, "trade_no": ref.channel_trade_no}


def query_result(node: dict[str, Any]) -> ChannelResult:
    """All receivers SUCCESS → SUCCESS (amount = their sum); any PROCESSING → WAITING; all FAIL → FAIL with the
    first receiver's error_code. Some succeeded and some failed (possible only in async mode, which we never use)
    is WAITING with `PARTIAL_SPLIT`: money moved, so never FAIL, and a person must look."""
    details = node.get("royalty_detail_list")
    if not isinstance(details, list) or not details or not all(isinstance(d, dict) for d in details):
        return ChannelResult.unknown(ErrorClass.MALFORMED, "settle.query: no royalty_detail_list")
    states = [d.get("state") for d in details]
    if any(s not in ("SUCCESS", "FAIL", "PROCESSING") for s in states):
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"settle.query: unknown state in {states!r}")
    if "PROCESSING" in states:
        return ChannelResult(ResultStatus.WAITING, code="PROCESSING")
    if all(s == "SUCCESS" for s in states):
        try:
            amount = sum(codec.fen(str(d["amount"])) for d in details)
        except (KeyError, ValueError) as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"settle.query: amount: {exc}")
        return ChannelResult(ResultStatus.SUCCESS, amount=amount)
    if all(s == "FAIL" for s in states):
        first = details[0]
        return ChannelResult(
            ResultStatus.FAIL, code=_opt_str(first.get("error_code")), message=_opt_str(first.get("error_desc"))
        )
    return ChannelResult(ResultStatus.WAITING, code=PARTIAL_SPLIT, message="some receivers failed: check by hand")


def return_refused(req: SplitReturnRequest) -> ChannelResult:
    """No stand-alone return at Alipay: the money comes back inside a refund (`refund_royalty_parameters`)."""
    return ChannelResult(
        ResultStatus.FAIL, ErrorClass.REJECTED, code=RETURN_WITH_REFUND,
        message="Alipay takes split money back only with a refund (refund_royalty_parameters)",
    )  # fmt: skip


async def bind_receiver(call: Call, receiver: SplitReceiver) -> ChannelResult:
    node = await call(BIND_METHOD, bind_biz(receiver), receiver.sub)
    return node if isinstance(node, ChannelResult) else bind_result(node)


async def split(call: Call, req: SplitRequest) -> ChannelResult:
    node = await call(SETTLE_METHOD, settle_biz(req), req.sub)
    return node if isinstance(node, ChannelResult) else settle_result(node, sum(s.amount for s in req.shares))


async def query_split(call: Call, ref: SplitRef) -> ChannelResult:
    node = await call(QUERY_METHOD, query_biz(ref), ref.sub)
    return node if isinstance(node, ChannelResult) else query_result(node)


async def finish_split(call: Call, ref: SplitRef) -> ChannelResult:
    node = await call(SETTLE_METHOD, finish_biz(ref), ref.sub)
    return node if isinstance(node, ChannelResult) else settle_result(node)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
