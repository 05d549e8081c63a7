"""Bank payouts (代付) between BankAdapter and the bank simulator, in process: request, notify, query, faults.

Uses the in-process environment of `test_bank_sandbox` (adapter ↔ simulator over ASGI, notifies to a receiver that
verifies them with the adapter). Synchronisation waits on `notifier.drain()`, never on sleeps.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration import test_bank_sandbox
from tests.integration.test_bank_sandbox import CERT_ID, NOTIFY_URL, Env, bank_config
from tomato.channel.adapters.bank import BankAdapter, codec, parse_config, signing
from tomato.channel.protocol import CallbackRejected, ErrorClass, PayoutChannel, PayoutRef, PayoutRequest, ResultStatus
from tomato.channel.sandbox import SandboxState
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.bank_payouts import PAYOUT_REJECT_CODE
from tomato.core.crypto import load_public_key, public_key_pem

NUMBER = "6216261000000000018"
keys = test_bank_sandbox.keys  # the shared in-process adapter ↔ simulator environment's fixtures
env = test_bank_sandbox.env


def payout_request(payout_no: str, amount: int = 50_000, name: str = "张三") -> PayoutRequest:
    return PayoutRequest(
        payout_no=payout_no,
        amount=amount,
        account_name=name,
        account_number=NUMBER,
        bank_name="Bank of Tests",
        notify_url=NOTIFY_URL,
        created_at=datetime(2026, 12, 6, 7, 0, tzinfo=UTC),
    )


def ref(req: PayoutRequest) -> PayoutRef:
    return PayoutRef(req.payout_no, req.created_at, req.amount)


async def test_the_adapter_speaks_payouts(env: Env) -> None:
    assert isinstance(env.adapter, PayoutChannel)


async def test_payout_is_accepted_then_paid_by_notify_and_query(env: Env) -> None:
    # half a second: the first query surely finds it in process
    env.sim.payout_desk.delay_s = 0.5 * env.state.time_scale
    req = payout_request("W20261206000001")
    answer = await env.adapter.payout(req)
    assert (answer.status, answer.code) == (ResultStatus.WAITING, "00"), answer
    assert answer.channel_trade_no

    in_process = await env.adapter.query_payout(ref(req))
    assert (in_process.status, in_process.code) == (ResultStatus.WAITING, "05")

    await env.state.notifier.drain()
    [notify] = env.receiver.notifies
    assert (notify.kind, notify.status, notify.payout_no, notify.amount) == (
        "payout",
        ResultStatus.SUCCESS,
        "W20261206000001",
        50_000,
    )
    assert notify.channel_trade_no == answer.channel_trade_no
    assert "accNo" not in notify.raw and notify.failure_reason is None

    done = await env.adapter.query_payout(ref(req))
    assert (done.status, done.amount, done.channel_trade_no) == (ResultStatus.SUCCESS, 50_000, answer.channel_trade_no)
    [made] = env.sim.payouts()
    assert (made.acc_no, made.name, made.amount) == (NUMBER, "张三", 50_000)


async def test_the_request_carries_the_acp_payout_fields(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """txnType 12 / txnSubType 00 / bizType 000401, accType 01, customerInfo = base64({customerNm=…}), signed."""
    seen = _spy(env)
    await env.adapter.payout(payout_request("W20261206000002", name="A&B={x}"))
    [fields] = seen
    assert (fields["txnType"], fields["txnSubType"], fields["bizType"], fields["accType"]) == (
        "12",
        "00",
        "000401",
        "01",
    )
    assert (fields["accNo"], fields["txnAmt"], fields["currencyCode"], fields["backUrl"]) == (
        NUMBER,
        "50000",
        "156",
        NOTIFY_URL,
    )
    assert fields["txnTime"] == "20261206150000"  # Beijing wall clock of created_at
    assert base64.b64decode(fields["customerInfo"]).decode() == "{customerNm=A＆B＝｛x｝}"
    assert fields["certId"] == CERT_ID
    assert signing.verify_fields(fields, load_public_key(signing_public_pem(keys)))


def signing_public_pem(keys: dict[str, rsa.RSAPrivateKey]) -> str:
    return public_key_pem(keys["merchant"])


async def test_reject_payouts_fails_after_acceptance(env: Env) -> None:
    """The real protocol: accepted synchronously, refused by the payee's bank later (notify and query say so)."""
    await env.faults(reject_payouts=True)
    req = payout_request("W20261206000003")
    answer = await env.adapter.payout(req)
    assert answer.status is ResultStatus.WAITING
    await env.state.notifier.drain()
    [notify] = env.receiver.notifies
    assert (notify.kind, notify.status) == ("payout", ResultStatus.FAIL)
    assert notify.failure_reason is not None and notify.failure_reason.startswith(PAYOUT_REJECT_CODE)
    failed = await env.adapter.query_payout(ref(req))
    assert (failed.status, failed.error, failed.code) == (ResultStatus.FAIL, ErrorClass.NONE, PAYOUT_REJECT_CODE)
    assert failed.settles_query


async def test_a_resend_is_a_duplicate_the_adapter_leaves_to_the_query(env: Env) -> None:
    req = payout_request("W20261206000004")
    assert (await env.adapter.payout(req)).status is ResultStatus.WAITING
    again = await env.adapter.payout(req)
    assert (again.status, again.error, again.code) == (ResultStatus.UNKNOWN, ErrorClass.NONE, "12")
    await env.state.notifier.drain()
    assert len(env.sim.payouts()) == 1


async def test_unknown_payout_queries_as_waiting_34(env: Env) -> None:
    missing = await env.adapter.query_payout(ref(payout_request("W20261206000005")))
    assert (missing.status, missing.code) == (ResultStatus.WAITING, "34")


@pytest.mark.parametrize("number", ["1234567", "12345678901234567890123456789012345", "62162610000000000１8"])
async def test_the_bank_refuses_a_malformed_account_number_synchronously(env: Env, number: str) -> None:
    req = payout_request("W20261206000006")
    bad = PayoutRequest(**{**req.__dict__, "account_number": number})
    answer = await env.adapter.payout(bad)
    assert (answer.status, answer.error, answer.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "10")
    assert env.sim.payouts() == []


async def test_a_forged_payout_notify_is_refused(env: Env, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    fields = {
        "version": codec.VERSION, "encoding": codec.ENCODING, "signMethod": codec.SIGN_METHOD_RSA,
        "txnType": "12", "txnSubType": "00", "bizType": "000401", "accessType": "0", "merId": "777290058110048",
        "orderId": "W20261206000007", "txnTime": "20261206150000", "txnAmt": "50000", "respCode": "00",
        "queryId": "1", "currencyCode": "156",
    }  # fmt: skip
    forged = signing.sign_fields(fields, keys["other"], "1")
    with pytest.raises(CallbackRejected):
        env.adapter.parse_callback({}, codec.encode_form(forged))


def test_payout_request_repr_masks_the_number() -> None:
    assert NUMBER not in repr(payout_request("W1"))


def _spy(env: Env) -> list[dict[str, str]]:
    """The verified payout requests the bank receives."""
    seen: list[dict[str, str]] = []
    original = env.sim._back["12"]  # noqa: SLF001

    def spy(mer_id: str, fields: dict[str, str]) -> dict[str, str]:
        seen.append(dict(fields))
        return original(mer_id, fields)

    env.sim._back["12"] = spy  # noqa: SLF001
    return seen


async def test_with_encrypt_cert_id_the_card_number_travels_encrypted(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen = _spy(env)
    config = parse_config(bank_config(keys, env.sim) | {"encrypt_cert_id": env.sim.cert_id})
    adapter = BankAdapter(config, env.payer)
    answer = await adapter.payout(payout_request("W20261206000008"))
    assert answer.status is ResultStatus.WAITING, answer
    [fields] = seen
    assert fields["encryptCertId"] == env.sim.cert_id
    assert NUMBER not in fields["accNo"]
    assert signing.decrypt_data(keys["bank"], fields["accNo"]) == NUMBER
    [made] = env.sim.payouts()
    assert made.acc_no == NUMBER


async def test_an_encryption_key_the_bank_does_not_know_is_refused(
    env: Env, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    config = parse_config(bank_config(keys, env.sim) | {"encrypt_cert_id": "123"})
    answer = await BankAdapter(config, env.payer).payout(payout_request("W20261206000009"))
    assert (answer.status, answer.error, answer.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "10")
    assert env.sim.payouts() == []


@pytest.mark.parametrize("value", ["", "12a", 42, "1" * 41])
def test_encrypt_cert_id_must_be_a_decimal_serial(keys: dict[str, rsa.RSAPrivateKey], value: object) -> None:
    sim = BankSimulator(SandboxState(), private_key=keys["bank"])
    with pytest.raises(ValueError, match="encrypt_cert_id"):
        parse_config(bank_config(keys, sim) | {"encrypt_cert_id": value})
