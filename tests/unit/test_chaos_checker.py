"""The chaos checker (bench/chaos_check.py) on a finished run's state: clean, it passes; damaged one way at a time,
it names that damage."""

from __future__ import annotations

import copy

import pytest

from bench.chaos_check import RunState, check


def finished_run() -> RunState:
    """Two paid orders (one partly refunded), a closed one, a payout, every event delivered once."""
    return RunState(
        sim_paid={"P1": 1000, "P2": 500},
        channel_payments={"P1": 1000, "P2": 500},
        channel_refunds={"R1": 300},
        orders={"P1": {"status": "SUCCEEDED", "amount": 1000}, "P2": {"status": "SUCCEEDED", "amount": 500},
                "P3": {"status": "CLOSED", "amount": 700}},  # fmt: skip
        refunds={"R1": {"order_no": "P1", "amount": 300, "status": "SUCCEEDED"}},
        events=[{"id": "E1", "type": "pay.succeeded", "ref": "P1"}, {"id": "E2", "type": "pay.succeeded", "ref": "P2"},
                {"id": "E3", "type": "pay.closed", "ref": "P3"}, {"id": "E4", "type": "refund.succeeded", "ref": "R1"},
                {"id": "E5", "type": "payout.succeeded", "ref": "W1"}],  # fmt: skip
        delivered={"E1": ["h1"], "E2": ["h2"], "E3": ["h3"], "E4": ["h4"], "E5": ["h5"]},
        journals=[{"kind": "payment", "order_no": "P1", "refund_no": None, "payout_no": None},
                  {"kind": "payment", "order_no": "P2", "refund_no": None, "payout_no": None},
                  {"kind": "refund", "order_no": "P1", "refund_no": "R1", "payout_no": None}],  # fmt: skip
        payouts={"W1": {"status": "SUCCEEDED", "amount": 100}, "W2": {"status": "FAILED", "amount": 70}},
        bank_payouts={"W1": {"status": "SUCCESS", "amount": 100}, "W2": {"status": "FAIL", "amount": 70}},
        recon={"CA1": "MATCHED", "CA2": "MATCHED"},
        keys={"o-A": ["P1"], "o-B": ["P2"], "r-X": ["R1"]},
    )


def test_a_clean_run_passes_and_survives_json() -> None:
    state = finished_run()
    verdict = check(RunState.from_json(state.to_json()))
    assert verdict.ok, verdict.problems
    assert (verdict.lost, verdict.doubled) == (0, 0)
    assert verdict.checked["paid orders"] == 2


def _damaged(damage: str) -> RunState:
    s = copy.deepcopy(finished_run())
    if damage == "delivery removed":
        del s.delivered["E2"]
    elif damage == "two bodies":
        s.delivered["E1"] = ["h1", "h1-changed"]
    elif damage == "ledger entry doubled":
        s.journals.append({"kind": "payment", "order_no": "P1", "refund_no": None, "payout_no": None})
    elif damage == "refund unknown to the channel":
        s.refunds["R2"] = {"order_no": "P2", "amount": 100, "status": "SUCCEEDED"}
    elif damage == "payment lost":
        s.orders["P2"]["status"] = "PAYING"
    elif damage == "pay.succeeded twice":
        s.events.append({"id": "E9", "type": "pay.succeeded", "ref": "P1"})
        s.delivered["E9"] = ["h9"]
    elif damage == "refunds exceed payment":
        s.refunds["R3"] = {"order_no": "P2", "amount": 600, "status": "PENDING"}
    elif damage == "payout not final":
        s.payouts["W1"]["status"] = "PENDING"
    elif damage == "payout the bank never paid":
        s.bank_payouts["W1"] = {"status": "NOT_FOUND", "amount": None}
    elif damage == "payout failed here, paid at the bank":
        s.bank_payouts["W2"] = {"status": "SUCCESS", "amount": 70}
    elif damage == "reconciliation":
        s.recon["CA2"] = "DISCREPANCIES"
    elif damage == "idempotency diverged":
        s.keys["o-A"] = ["P1", "P7"]
    elif damage == "ledger check":
        s.ledger_violations = ["violation: trial balance off by 1"]
    elif damage == "refund made at the channel only":
        s.channel_refunds["R8"] = 50
    return s


@pytest.mark.parametrize(
    ("damage", "kind", "words"),
    [
        ("delivery removed", "lost", "E2"),
        ("two bodies", "doubled", "E1 delivered with 2 different bodies"),
        ("ledger entry doubled", "doubled", "P1 booked 2 times"),
        ("refund unknown to the channel", "doubled", "refund R2"),
        ("payment lost", "lost", "order P2"),
        ("pay.succeeded twice", "doubled", "P1 has 2 pay.succeeded"),
        ("refunds exceed payment", "doubled", "P2: refunds 600 exceed"),
        ("payout not final", "", "payout W1 not final"),
        ("payout the bank never paid", "doubled", "payout W1 SUCCEEDED here"),
        ("payout failed here, paid at the bank", "doubled", "payout W2 FAILED here"),
        ("reconciliation", "", "CA2: DISCREPANCIES"),
        ("idempotency diverged", "doubled", "o-A"),
        ("ledger check", "", "trial balance off by 1"),
        ("refund made at the channel only", "lost", "refund R8"),
    ],
)
def test_each_damage_is_reported(damage: str, kind: str, words: str) -> None:
    verdict = check(_damaged(damage))
    assert not verdict.ok
    assert any(words in p for p in verdict.problems), verdict.problems
    if kind == "lost":
        assert verdict.lost >= 1
    elif kind == "doubled":
        assert verdict.doubled >= 1
    else:
        assert (verdict.lost, verdict.doubled) == (0, 0), verdict.problems
