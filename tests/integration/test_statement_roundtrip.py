"""Simulator statements round-trip through the adapters' downloads and the parsers, for every channel and fault.

All three simulators share one in-process sandbox on a frozen business clock (10:00 China time on DAY); each
channel's adapter talks to it over httpx.ASGITransport exactly as it would over the network. Notifies go to a
mock receiver that records them, so a MISSING_LOCAL payment can be shown to have sent none. The raw store is
checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from tomato.channel.adapters.alipay import AlipayAdapter
from tomato.channel.adapters.alipay import parse_config as alipay_config
from tomato.channel.adapters.bank import BankAdapter
from tomato.channel.adapters.bank import parse_config as bank_config
from tomato.channel.adapters.wechat import WechatAdapter
from tomato.channel.adapters.wechat import parse_config as wechat_config
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    ChannelAdapter,
    CreateRequest,
    RefundRequest,
    ResultStatus,
    SubMerchant,
    TradeRef,
)
from tomato.channel.sandbox import (
    SandboxState,
    alipay_simulator,
    bank_simulator,
    create_sandbox_app,
    wechat_simulator,
)
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.state import SimRefund, SimTrade, TradeState
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.core.db import Database
from tomato.reconciliation.statement import LineKind, MalformedRow, StatementLine, parse_statement
from tomato.reconciliation.store import StatementStore, fetch_statement

SANDBOX = "http://sandbox.test"
NOTIFY_URL = "http://platform.test/callbacks/x"
DAY = date(2026, 3, 10)
AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in China
PPM = 3800
METHOD = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE", "bank": "BANK_WEB"}
CHANNELS = ("alipay", "wechat", "bank")


def fee(amount: int) -> int:
    return (amount * PPM + 500_000) // 1_000_000


def returned(amount: int, refunded: int) -> int:
    """Fee returned in all after refunds totalling `refunded` of a payment of `amount`."""
    return (2 * fee(amount) * refunded + amount) // (2 * amount)


@dataclass
class Channel:
    name: str
    adapter: ChannelAdapter
    sandbox: httpx.AsyncClient
    state: SandboxState
    notified: list[httpx.Request]
    created: dict[str, datetime] = field(default_factory=dict)
    trade_nos: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:  # order numbers of one channel only: the payer API scans across channels
        letter = self.name[0].upper()
        self.P = [f"P{letter}20260310{n:04d}" for n in range(8)]
        self.R = [f"R{letter}20260310{n:04d}" for n in range(3)]

    async def create(self, order_no: str, amount: int) -> None:
        self.created[order_no] = AT
        result = await self.adapter.create(
            CreateRequest(
                order_no=order_no, amount=amount, subject="会员充值,月卡", pay_method=METHOD[self.name],
                notify_url=NOTIFY_URL, expire_at=AT + timedelta(minutes=30), return_url="https://shop.test/done",
                client_ip="203.0.113.9", openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", created_at=AT,
            )
        )  # fmt: skip
        assert result.status is ResultStatus.SUCCESS, result

    async def pay(self, order_no: str, amount: int) -> None:
        await self.create(order_no, amount)
        scanned = await self.sandbox.post("/sandbox/scan", json={"order_no": order_no, "result": "paid"})
        assert scanned.status_code == 200, scanned.text
        self.trade_nos[order_no] = scanned.json()["channel_trade_no"]
        await self.state.notifier.drain()

    async def refund(self, order_no: str, refund_no: str, amount: int, total: int) -> None:
        result = await self.adapter.refund(
            RefundRequest(
                order_no, refund_no, amount, total, NOTIFY_URL, channel_trade_no=self.trade_nos[order_no],
                order_created_at=self.created[order_no], created_at=AT,
            )
        )  # fmt: skip
        assert result.status in (ResultStatus.SUCCESS, ResultStatus.WAITING), result
        await self.state.notifier.drain()

    async def statement(self) -> list[StatementLine]:
        data = await self.adapter.download_statement(DAY)
        lines = list(parse_statement(self.name, io.BytesIO(data)))
        assert not [line for line in lines if isinstance(line, MalformedRow)], lines
        return [line for line in lines if isinstance(line, StatementLine)]

    async def faults(self, *faults: tuple[str, str], day: date = DAY) -> httpx.Response:
        body = {"channel": self.name, "date": day.isoformat(),
                "faults": [{"type": t, "order_no": n} for t, n in faults]}  # fmt: skip
        return await self.sandbox.post("/sandbox/statement-faults", json=body)


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"alipay": generate_rsa_key(), "wechat": generate_rsa_key(), "bank": generate_rsa_key()}


@pytest.fixture
async def sandbox(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[dict[str, Channel]]:
    notified: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        notified.append(request)
        return httpx.Response(200, text="success")

    state = SandboxState(time_scale=1_000_000, clock=FrozenClock(AT), notify_transport=httpx.MockTransport(receive))
    alipay, wechat, bank = alipay_simulator(state), wechat_simulator(state), bank_simulator(state)
    alipay.register_app("2021000000000001", public_key_pem(keys["alipay"]))
    serial, api_v3_key = secrets.token_hex(20).upper(), secrets.token_hex(16)
    wechat.register_merchant("1900000109", serial, public_key_pem(keys["wechat"]), api_v3_key)
    bank.register_merchant("777290058110048", "69629715588", public_key_pem(keys["bank"]))
    app = create_sandbox_app(state)
    async with (
        guarded_client(5.0, transport=httpx.ASGITransport(app=app)) as http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SANDBOX) as payer,
    ):
        adapters: dict[str, ChannelAdapter] = {
            "alipay": AlipayAdapter(alipay_config({
                "app_id": "2021000000000001", "private_key_pem": private_key_pem(keys["alipay"]),
                "alipay_public_key_pem": alipay.public_key_pem, "gateway_url": f"{SANDBOX}/alipay/gateway.do",
            }), http),
            "wechat": WechatAdapter(wechat_config({
                "mchid": "1900000109", "appid": "wxd678efh567hg6787", "serial_no": serial,
                "private_key_pem": private_key_pem(keys["wechat"]), "api_v3_key": api_v3_key,
                "platform_public_key_pem": wechat.public_key_pem, "platform_public_key_id": wechat.public_key_id,
                "base_url": SANDBOX,
            }), http),
            "bank": BankAdapter(bank_config({
                "mer_id": "777290058110048", "cert_id": "69629715588", "private_key_pem": private_key_pem(keys["bank"]),
                "bank_public_key_pem": bank.public_key_pem, **BankSimulator.urls(SANDBOX),
            }), http),
        }  # fmt: skip
        yield {name: Channel(name, adapter, payer, state, notified) for name, adapter in adapters.items()}
        await state.aclose()


AMOUNTS = [1234, 500, 777, 999, 2000, 1500, 3000, 10]


async def a_day(ch: Channel) -> None:
    """Six payments (P0–P5), two refunds of P0 (R0, R1) and one of P5 (R2); P6 and P7 created, never paid."""
    for order_no, amount in zip(ch.P[:6], AMOUNTS, strict=False):
        await ch.pay(order_no, amount)
    await ch.refund(ch.P[0], ch.R[0], 234, 1234)
    await ch.refund(ch.P[0], ch.R[1], 1000, 1234)
    await ch.refund(ch.P[5], ch.R[2], 1500, 1500)
    await ch.create(ch.P[6], AMOUNTS[6])
    await ch.create(ch.P[7], AMOUNTS[7])


def key(line: StatementLine) -> str:
    return line.refund_no if line.kind is LineKind.REFUND and line.refund_no else str(line.order_no)


def summary(lines: list[StatementLine]) -> dict[str, tuple[str, int, int, str]]:
    out = {}
    for line in lines:
        assert line.occurred_at == AT
        out[key(line)] = (line.kind.value, line.amount, line.fee, line.status)
    return out


def clean_day(
    ch: Channel, extra: dict[str, tuple[str, int, int, str]] | None = None
) -> dict[str, tuple[str, int, int, str]]:
    paid = zip(ch.P[:6], AMOUNTS, strict=False)
    expected = {order_no: ("PAYMENT", amount, fee(amount), "SUCCESS") for order_no, amount in paid}
    expected[ch.R[0]] = ("REFUND", 234, returned(1234, 234), "SUCCESS")
    expected[ch.R[1]] = ("REFUND", 1000, returned(1234, 1234) - returned(1234, 234), "SUCCESS")
    expected[ch.R[2]] = ("REFUND", 1500, fee(1500), "SUCCESS")
    return expected | (extra or {})


@pytest.mark.parametrize("name", CHANNELS)
async def test_a_clean_day_round_trips_with_fees_returned_pro_rata(sandbox: dict[str, Channel], name: str) -> None:
    ch = sandbox[name]
    await a_day(ch)
    lines = await ch.statement()
    assert summary(lines) == clean_day(ch)
    assert len(lines) == 9
    assert (fee(1234), returned(1234, 234), returned(1234, 1234)) == (5, 1, 5)  # the refunds return 1 and 4
    payments = {line.order_no: line.channel_trade_no for line in lines if line.kind is LineKind.PAYMENT}
    assert payments == {order_no: ch.trade_nos[order_no] for order_no in ch.P[:6]}
    refunds = [line for line in lines if line.kind is LineKind.REFUND]
    if name == "bank":  # bank refund rows carry the refund's own orderId only
        assert {line.order_no for line in refunds} == {None}
    else:
        assert {line.order_no for line in refunds} == {ch.P[0], ch.P[5]}
        assert {line.channel_trade_no for line in refunds} == {ch.trade_nos[ch.P[0]], ch.trade_nos[ch.P[5]]}


@pytest.mark.parametrize("name", CHANNELS)
async def test_each_statement_fault_shows_in_the_parsed_statement(sandbox: dict[str, Channel], name: str) -> None:
    ch = sandbox[name]
    await a_day(ch)
    notifies_before = len(ch.notified)
    answer = await ch.faults(
        ("MISSING_CHANNEL", ch.P[1]), ("AMOUNT_MISMATCH", ch.P[2]), ("FEE_MISMATCH", ch.P[3]),
        ("STATUS_MISMATCH", ch.P[4]), ("DUPLICATE", ch.R[0]), ("MISSING_LOCAL", ch.P[6]),
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    second = await ch.faults(("FEE_MISMATCH", ch.P[2]), ("AMOUNT_MISMATCH", ch.R[2]))  # faults add up
    assert second.status_code == 200 and len(second.json()["faults"]) == 8
    lines = await ch.statement()
    by_key: dict[str, list[tuple[str, int, int, str]]] = {}
    for line in lines:
        by_key.setdefault(key(line), []).append((line.kind.value, line.amount, line.fee, line.status))
    clean = clean_day(ch)
    assert ch.P[1] not in by_key
    assert by_key[ch.P[2]] == [("PAYMENT", 778, fee(777) + 1, "SUCCESS")]
    assert by_key[ch.P[3]] == [("PAYMENT", 999, fee(999) + 1, "SUCCESS")]
    assert [(k, a, f) for k, a, f, _ in by_key[ch.P[4]]] == [("PAYMENT", 2000, fee(2000))]
    assert by_key[ch.P[4]][0][3] != "SUCCESS"
    assert by_key[ch.R[0]] == [clean[ch.R[0]], clean[ch.R[0]]]
    assert by_key[ch.R[2]] == [("REFUND", 1501, fee(1500), "SUCCESS")]
    assert by_key[ch.P[6]] == [("PAYMENT", 3000, fee(3000), "SUCCESS")]
    assert ch.P[7] not in by_key
    untouched = {ch.P[0], ch.P[5], ch.R[1]}
    assert {k: v[0] for k, v in by_key.items() if k in untouched} == {k: clean[k] for k in untouched}
    # MISSING_LOCAL: paid to queries too, and no notify was sent for it
    query = await ch.adapter.query(TradeRef(ch.P[6], amount=3000, created_at=AT))
    assert query.status is ResultStatus.SUCCESS, query
    assert len(ch.notified) == notifies_before

    reset = await ch.sandbox.delete("/sandbox/statement-faults")
    assert reset.status_code == 200
    assert summary(await ch.statement()) == clean_day(ch, {ch.P[6]: ("PAYMENT", 3000, fee(3000), "SUCCESS")})
    assert (await ch.adapter.query(TradeRef(ch.P[6], amount=3000, created_at=AT))).status is ResultStatus.SUCCESS


async def test_faults_of_another_date_or_channel_leave_the_statement_alone(sandbox: dict[str, Channel]) -> None:
    wx, ali = sandbox["wechat"], sandbox["alipay"]
    await a_day(wx)
    await a_day(ali)
    assert (await wx.faults(("MISSING_CHANNEL", wx.P[1]), day=DAY - timedelta(days=1))).status_code == 200
    assert (await ali.faults(("MISSING_CHANNEL", ali.P[1]))).status_code == 200
    assert summary(await wx.statement()) == clean_day(wx)
    assert ali.P[1] not in summary(await ali.statement())


async def test_a_fault_that_empties_a_day_gives_an_empty_statement(sandbox: dict[str, Channel]) -> None:
    for name in CHANNELS:
        ch = sandbox[name]
        await ch.pay(ch.P[0], 1234)
        assert (await ch.faults(("MISSING_CHANNEL", ch.P[0]))).status_code == 200
        assert await ch.statement() == []


async def test_statement_fault_requests_are_checked(sandbox: dict[str, Channel]) -> None:
    ch = sandbox["bank"]
    await ch.pay(ch.P[0], 1234)
    await ch.create(ch.P[1], 500)
    post = ch.sandbox.post

    async def status(body: Any) -> int:
        return (await post("/sandbox/statement-faults", json=body)).status_code

    good = {"channel": "bank", "date": "2026-03-10", "faults": [{"type": "DUPLICATE", "order_no": ch.P[0]}]}
    assert await status({**good, "channel": "paypal"}) == 422
    assert await status({**good, "date": "2026-02-30"}) == 422
    assert await status({**good, "date": "10/03/2026"}) == 422
    assert await status({**good, "faults": []}) == 422
    assert await status({**good, "faults": [{"type": "LATE", "order_no": ch.P[0]}]}) == 422
    assert await status({**good, "faults": [{"type": "DUPLICATE"}]}) == 422
    assert await status({**good, "extra": 1}) == 422
    assert (await post("/sandbox/statement-faults", content=b"{", headers={"content-type": "application/json"})
            ).status_code == 422  # fmt: skip
    assert await status({**good, "faults": [{"type": "DUPLICATE", "order_no": "P99999999999"}]}) == 404
    assert await status({**good, "faults": [{"type": "MISSING_LOCAL", "order_no": ch.P[0]}]}) == 409  # paid already
    # a refused request changes nothing, even its valid faults
    assert await status({**good, "faults": [{"type": "MISSING_LOCAL", "order_no": ch.P[1]},
                                            {"type": "MISSING_LOCAL", "order_no": ch.P[0]}]}) == 409  # fmt: skip
    assert ch.state.statement_faults == {}
    assert [line.order_no for line in await ch.statement()] == [ch.P[0]]
    assert await status(good) == 200


async def test_fees_follow_the_simulator_setting() -> None:
    state = SandboxState(fee_ppm=6000, clock=FrozenClock(AT))
    trade = SimTrade("bank", "m1", "P1", "Q1", 1234, "s", "", AT, TradeState.PAID, paid_at=AT)
    trade.refunds = {"R1": SimRefund("R1", 234, AT), "R2": SimRefund("R2", 1000, AT)}
    state.books["bank"].add(trade)
    rows = state.statement_rows("bank", "m1", DAY)
    # 6,000 ppm of 1234 is 7; the refunds return (2·7·234 + 1234) // 2468 = 1, then 7 − 1 = 6
    assert [(row.refund.refund_no if row.refund else None, row.fee) for row in rows] == [
        (None, 7),
        ("R1", 1),
        ("R2", 6),
    ]
    assert state.statement_rows("bank", "m2", DAY) == [] and state.statement_rows("bank", "m1", date(2026, 3, 9)) == []
    with pytest.raises(ValueError, match="fee_ppm"):
        SandboxState(fee_ppm=1_000_001)
    await state.aclose()


# --- the raw store ------------------------------------------------------------------------------------------


class Accounts:
    def __init__(self, adapters: dict[str, ChannelAdapter]) -> None:
        self._adapters = adapters

    async def adapter(self, account_id: str) -> ChannelAdapter:
        return self._adapters[account_id]

    async def statement_subs(self, account_id: str) -> list[SubMerchant]:
        return []  # direct accounts


async def test_fetched_statements_are_stored_by_content(
    sandbox: dict[str, Channel], db: Database, tmp_path: Path
) -> None:
    store = StatementStore(db, tmp_path / "statements", FrozenClock(AT))
    accounts = Accounts({f"ca-{name}": ch.adapter for name, ch in sandbox.items()})
    for ch in sandbox.values():
        await ch.pay(ch.P[0], 1234)
    stored = {name: await fetch_statement(accounts, f"ca-{name}", DAY, store=store) for name in CHANNELS}
    for name, s in stored.items():
        assert (s.channel, s.channel_account_id, s.business_date) == (name, f"ca-{name}", DAY)
        assert s.path == tmp_path / "statements" / s.sha256[:2] / s.sha256 and s.path.stat().st_size == s.size
        assert store.verify(s)
        with s.lines() as lines:
            assert [line.order_no for line in lines if isinstance(line, StatementLine)] == [sandbox[name].P[0]]
        assert await store.latest(f"ca-{name}", DAY) == s
    assert await store.latest("ca-wechat", DAY - timedelta(days=1)) is None

    # The same content again: still one row. Other content: a second row, and the newest is the current one.
    wechat = stored["wechat"]
    again = await store.fetch(accounts, "ca-wechat", DAY)
    assert again.sha256 == wechat.sha256
    await sandbox["wechat"].faults(("DUPLICATE", sandbox["wechat"].P[0]))
    store._clock = FrozenClock(AT + timedelta(hours=1))  # a later fetch
    changed = await fetch_statement(accounts, "ca-wechat", DAY, store=store)
    assert changed.sha256 != wechat.sha256 and wechat.path.is_file()
    assert await store.latest("ca-wechat", DAY) == changed
    async with db.uow() as uow:
        rows = (await uow.session.execute(
            text("SELECT sha256 FROM statement_files WHERE channel_account_id = 'ca-wechat' ORDER BY fetched_at")
        )).scalars().all()  # fmt: skip
    assert list(rows) == [wechat.sha256, changed.sha256]

    # A file changed on disk no longer verifies.
    wechat.path.write_bytes(b"tampered")
    assert not store.verify(wechat)


async def test_alipay_bill_zip_layout(sandbox: dict[str, Channel]) -> None:
    """The Alipay bill's byte layout: GBK entry names, marker lines, TAB-suffixed ids, footer totals."""
    ch = sandbox["alipay"]
    await ch.pay(ch.P[0], 1234)
    await ch.refund(ch.P[0], ch.R[0], 234, 1234)
    data = await ch.adapter.download_statement(DAY)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [info.filename.encode("cp437").decode("gbk") for info in infos]
        assert [info.flag_bits & 0x800 for info in infos] == [0, 0]
        assert names == ["2088101000000001_20260310_业务明细.csv", "2088101000000001_20260310_业务明细(汇总).csv"]
        detail = archive.read(infos[0]).decode("gbk").split("\r\n")
        totals = archive.read(infos[1]).decode("gbk").split("\r\n")
    assert detail[:4] == [
        "#支付宝业务明细查询",
        "#账号：[2088101000000001]",
        "#起始日期：[2026年03月10日 00:00:00]   终止日期：[2026年03月11日 00:00:00]",
        "#" + "-" * 41 + "业务明细列表" + "-" * 40,
    ]
    assert len(detail[4].split(",")) == 25
    payment, refund = detail[5].split(","), detail[6].split(",")
    assert payment[0] == ch.trade_nos[ch.P[0]] + "\t" and payment[1] == ch.P[0] + "\t" and payment[2] == "交易\t"
    assert payment[3] == "会员充值，月卡"  # the separator in the subject is made full-width
    assert (payment[11], payment[12], payment[22]) == ("12.34", "12.34", "-0.05")
    assert (refund[2], refund[11], refund[21], refund[22]) == ("退款\t", "-2.34", ch.R[0] + "\t", "0.01")
    assert detail[7] == "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
    assert detail[8] == "#交易合计：1笔，商家实收共12.34元，商家优惠共0.00元"
    assert detail[9] == "#退款合计：1笔，商家实收退款共-2.34元，商家优惠退款共0.00元"
    assert detail[10].startswith("#导出时间：[2026年03月10日 10:00:00]") and detail[11] == ""
    assert totals[0] == "#支付宝业务汇总查询" and totals[5] == ",合计,1,1,10.00,10.00,0.00,0.00,0.00,-0.04,0.00,9.96"
