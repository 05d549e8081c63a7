"""The statement of an Alipay service-provider account: every sub-merchant's bill for the day in one stored file.

`fetch_statement` asks the channel context for the account's sub-merchants (a fake here, as `ChannelService` is
in production), downloads each one's bill through the isv adapter from the simulator and keeps one file whose
parsed lines are all of them; a sub-merchant without a bill adds nothing. Checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures.alipay_isv import AT, DAY, NOTIFY_URL, SUB_A, SUB_B, IsvEnv, isv_env, isv_keys
from tomato.channel.protocol import ChannelAdapter, RefundRequest, StatementUnavailable, SubMerchant
from tomato.core.clock import FrozenClock
from tomato.core.db import Database
from tomato.reconciliation.parsers.alipay import member_name
from tomato.reconciliation.statement import LineKind, MalformedRow, StatementLine
from tomato.reconciliation.store import StatementStore, fetch_statement


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return isv_keys()


@pytest.fixture
async def env(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[IsvEnv]:
    async for value in isv_env(keys):
        yield value


class Channels:
    """The channel context `fetch_statement` reads: the account's adapter and its sub-merchants."""

    def __init__(self, adapters: dict[str, ChannelAdapter], subs: dict[str, list[SubMerchant]]) -> None:
        self._adapters = adapters
        self._subs = subs
        self.asked: list[str] = []

    async def adapter(self, account_id: str) -> ChannelAdapter:
        return self._adapters[account_id]

    async def statement_subs(self, account_id: str) -> list[SubMerchant]:
        self.asked.append(account_id)
        return self._subs.get(account_id, [])


def channels_of(env: IsvEnv, *names: str) -> Channels:
    return Channels(
        {"ca-isv": env.adapter, "ca-direct": env.direct},
        {"ca-isv": [env.subs[name] for name in names]},
    )


async def test_an_isv_statement_holds_every_sub_merchants_bill(env: IsvEnv, db: Database, tmp_path: Path) -> None:
    a_trade = await env.pay(env.adapter, "PA1", 1234, env.subs["A"])
    await env.adapter.refund(RefundRequest("PA1", "RA1", 234, 1234, NOTIFY_URL, a_trade, sub=env.subs["A"]))
    await env.pay(env.adapter, "PB1", 500, env.subs["B"])
    await env.pay(env.adapter, "PB2", 600, env.subs["B"])
    await env.pay(env.direct, "PD1", 700, None)  # the provider's own trade: not a sub-merchant's
    store = StatementStore(db, tmp_path / "statements", FrozenClock(AT))
    channels = channels_of(env, "B", "C", "A")  # C never traded: Alipay has no bill for it

    stored = await fetch_statement(channels, "ca-isv", DAY, store=store)
    assert channels.asked == ["ca-isv"] and (stored.channel, stored.business_date) == ("alipay", DAY)
    assert await store.latest("ca-isv", DAY) == stored and store.verify(stored)
    with stored.lines() as parsed:
        lines = list(parsed)
    assert not [line for line in lines if isinstance(line, MalformedRow)]
    got = sorted((line.kind, line.refund_no or line.order_no, line.amount) for line in lines
                 if isinstance(line, StatementLine))  # fmt: skip
    assert got == [(LineKind.PAYMENT, "PA1", 1234), (LineKind.PAYMENT, "PB1", 500), (LineKind.PAYMENT, "PB2", 600),
                   (LineKind.REFUND, "RA1", 234)]  # fmt: skip
    assert len({line.line_no for line in lines}) == len(lines)  # unique across the sub-merchants' files
    with stored.open() as raw, zipfile.ZipFile(raw) as archive:
        folders = sorted({member_name(info).split("/")[0] for info in archive.infolist()})
    assert [folder.split("-", 1)[1] for folder in folders] == [SUB_A, SUB_B]  # C added nothing

    # The records stored are the loader's too: the same lines, staged.
    records = [r for chunk in stored.statement().records("b1") if isinstance(chunk, list) for r in chunk]
    assert sorted(r[3] for r in records) == ["PA1", "PB1", "PB2", "RA1"]


async def test_a_direct_account_keeps_its_own_bill(env: IsvEnv, db: Database, tmp_path: Path) -> None:
    await env.pay(env.adapter, "PA1", 100, env.subs["A"])
    await env.pay(env.direct, "PD1", 700, None)
    store = StatementStore(db, tmp_path, FrozenClock(AT))
    stored = await fetch_statement(channels_of(env), "ca-direct", DAY, store=store)
    with stored.lines() as parsed:
        assert [line.order_no for line in parsed if isinstance(line, StatementLine)] == ["PD1"]


async def test_no_sub_merchant_with_a_bill_is_a_day_without_trades(env: IsvEnv, db: Database, tmp_path: Path) -> None:
    """Reconciliation reads NO_STATEMENT_EXIST as an empty statement (as WeChat's for a day without trades): a
    provider account that had no trade that day reconciles MATCHED with nothing on either side."""
    store = StatementStore(db, tmp_path, FrozenClock(AT))
    with pytest.raises(StatementUnavailable) as caught:
        await fetch_statement(channels_of(env, "C", "A"), "ca-isv", DAY, store=store)
    assert caught.value.result.code == "NO_STATEMENT_EXIST"
    assert await store.latest("ca-isv", DAY) is None


async def test_a_refused_sub_merchant_fails_the_whole_statement(env: IsvEnv, db: Database, tmp_path: Path) -> None:
    """A bill that could not be had is not "no bill": storing the rest would hide that sub-merchant's trades."""
    await env.pay(env.adapter, "PA1", 100, env.subs["A"])
    store = StatementStore(db, tmp_path, FrozenClock(AT))
    channels = Channels({"ca-isv": env.adapter}, {"ca-isv": [env.subs["A"], env.subs["OTHER_A"]]})
    with pytest.raises(StatementUnavailable) as caught:
        await fetch_statement(channels, "ca-isv", DAY, store=store)
    assert caught.value.result.code == "aop.invalid-app-auth-token"
    assert await store.latest("ca-isv", DAY) is None
