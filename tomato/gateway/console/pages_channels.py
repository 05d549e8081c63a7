"""Operator pages: channel accounts with their live breaker state and success rate, routing rules, fee plans."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from tomato.channel.schemas import RoutingRuleCreate
from tomato.core.errors import InvalidRequest
from tomato.core.pay_methods import ALL_PAY_METHODS
from tomato.gateway.console import audit
from tomato.gateway.console.audit import view
from tomato.gateway.console.forms import Form
from tomato.gateway.console.guard import form_of, page_route
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container
from tomato.merchant.schemas import FeePlanCreate

router = APIRouter(prefix="/console", route_class=page_route("operator"), include_in_schema=False)

AccountId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
RuleId = Annotated[str, Path(pattern=r"^RR[0-9]{1,20}$")]


@router.get("/channels")
async def channels(request: Request) -> Response:
    c = container(request)
    accounts = await c.channels.list_accounts(None, 100)
    health = {h.channel_account_id: h for h in await c.channels.health_of()}
    return html(request, "operator/channels.html", accounts=accounts, health=health)


@router.post("/channels/{account_id}/disable")
async def disable_account(account_id: AccountId, request: Request) -> Response:
    return await _set_status(request, account_id, "DISABLED")


@router.post("/channels/{account_id}/enable")
async def enable_account(account_id: AccountId, request: Request) -> Response:
    return await _set_status(request, account_id, "ACTIVE")


async def _set_status(request: Request, account_id: str, status: str) -> Response:
    svc = container(request).channels
    before = await svc.get_account(account_id)
    after = await svc.set_status(account_id, status)
    action = "channel_account.disable" if status == "DISABLED" else "channel_account.enable"
    await audit.record(request, action, account_id, view(before), view(after))
    return redirect("/console/channels?ok=account_updated")


@router.get("/routing")
async def routing(request: Request) -> Response:
    c = container(request)
    rules = await c.channels.list_rules(None, 100)
    accounts = await c.channels.list_accounts(None, 100)
    return html(request, "operator/routing.html", rules=rules, accounts=accounts, pay_methods=ALL_PAY_METHODS)


def candidates_of(form: Form) -> list[dict[str, Any]]:
    """One candidate per line of the textarea: `account_id [priority [weight]]`."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate((form.get("candidates") or "").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 3 or not all(p.isascii() and p.isdigit() for p in parts[1:]):
            raise InvalidRequest.field("candidates", f"line {n}: expected 'account_id [priority [weight]]'")
        candidate: dict[str, Any] = {"channel_account_id": parts[0]}
        if len(parts) > 1:
            candidate["priority"] = int(parts[1])
        if len(parts) > 2:
            candidate["weight"] = int(parts[2])
        out.append(candidate)
    return out


@router.post("/routing")
async def create_rule(request: Request) -> Response:
    form = form_of(request)
    fields: dict[str, Any] = {"pay_methods": form.getlist("pay_methods"), "app_id": form.get("app_id"),
                              "min_amount": form.int("min_amount"), "max_amount": form.int("max_amount"),
                              "candidates": candidates_of(form)}  # fmt: skip
    if (rank := form.int("rank")) is not None:
        fields["rank"] = rank
    created = await container(request).channels.create_rule(RoutingRuleCreate.model_validate(fields))
    await audit.record(request, "routing_rule.create", created.id, None, view(created))
    return redirect("/console/routing?ok=rule_created")


@router.post("/routing/{rule_id}/delete")
async def delete_rule(rule_id: RuleId, request: Request) -> Response:
    svc = container(request).channels
    before = next((r for r in await svc.list_rules(None, 1000) if r.id == rule_id), None)
    await svc.delete_rule(rule_id)
    await audit.record(request, "routing_rule.delete", rule_id, view(before), None)
    return redirect("/console/routing?ok=rule_deleted")


@router.get("/fee-plans")
async def fee_plans(request: Request) -> Response:
    plans = await container(request).merchants.list_fee_plans(None, 100)
    return html(request, "operator/fee_plans.html", plans=plans, pay_methods=ALL_PAY_METHODS)


@router.post("/fee-plans")
async def create_fee_plan(request: Request) -> Response:
    form = form_of(request)
    rates = {m: rate for m in ALL_PAY_METHODS if (rate := form.int(f"rate_{m}")) is not None}
    fields: dict[str, Any] = {"name": form.get("name") or "", "rates": rates,
                              "refund_fee": form.get("refund_fee") or "proportional"}  # fmt: skip
    if (min_fee := form.int("min_fee")) is not None:
        fields["min_fee"] = min_fee
    created = await container(request).merchants.create_fee_plan(FeePlanCreate.model_validate(fields))
    await audit.record(request, "fee_plan.create", created.id, None, view(created))
    return redirect("/console/fee-plans?ok=plan_created")
