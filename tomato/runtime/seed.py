"""Seeding a dev stack: simulator channel accounts wired both ways, routing rules, a demo merchant, tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tomato.bootstrap import Container
from tomato.channel.sandbox.app import alipay_simulator, bank_simulator, wechat_simulator
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.state import SandboxState
from tomato.channel.schemas import ChannelAccountCreate, RoutingRuleCreate
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.core.pay_methods import CHANNEL_OF, PayMethod
from tomato.merchant.portal_schemas import PortalInvite
from tomato.merchant.schemas import AppCreate, FeePlanAssign, FeePlanCreate, MerchantCreate
from tomato.runtime.seed_providers import seed_service_providers

DEMO_FEE_PPM = 6_000  # 0.60 % of every payment, whatever the pay method; refunds give it back in proportion
DEMO_OWNER = "owner@demo.example"  # the demo merchant's portal owner, invited by `tomato dev` and `tomato demo`
SIMULATOR_COST_PPM = 3_800  # what the simulated channels charge the platform: 0.38 %


@dataclass(frozen=True)
class DevCredentials:
    mch_no: str
    app_id: str
    app_secret: str
    rsa_app_id: str
    rsa_private_key_pem: str
    platform_public_key_pem: str
    admin_tokens: dict[str, str]
    channel_accounts: dict[str, str]
    service_provider_accounts: dict[str, str]  # channel → the Alipay ISV / WeChat Pay partner account
    portal_invite_path: str  # /portal/invite/<token>: the demo merchant's owner sets a password and TOTP there

    def as_json(self, base_url: str, sandbox_url: str) -> dict[str, Any]:
        """The credentials file of docs/operations.md."""
        return {
            "base_url": base_url,
            "sandbox_url": sandbox_url,
            "mch_no": self.mch_no,
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "rsa_app": {
                "app_id": self.rsa_app_id,
                "private_key_pem": self.rsa_private_key_pem,
                "platform_public_key_pem": self.platform_public_key_pem,
            },
            "admin_tokens": self.admin_tokens,
            "channel_accounts": self.channel_accounts,
            "service_provider_accounts": self.service_provider_accounts,
            "portal_owner": {"email": DEMO_OWNER, "invite_url": base_url + self.portal_invite_path},
        }


async def seed_channel_accounts(c: Container, sandbox: SandboxState, sandbox_url: str) -> dict[str, str]:
    """One simulator account per available channel, and a rank-0 rule sending each of its methods to it."""
    accounts: dict[str, str] = {}
    alipay = alipay_simulator(sandbox)
    merchant_key = generate_rsa_key()
    alipay_app_id = f"20210001{c.ids.next_int() % 10**8:08d}"
    alipay.register_app(alipay_app_id, public_key_pem(merchant_key))
    account = await c.channels.create_account(
        ChannelAccountCreate(
            channel="alipay",
            name="Alipay simulator",
            cost_ppm=SIMULATOR_COST_PPM,
            config={
                "app_id": alipay_app_id,
                "private_key_pem": private_key_pem(merchant_key),
                "alipay_public_key_pem": alipay.public_key_pem,
                "gateway_url": f"{sandbox_url}/alipay/gateway.do",
            },
        )
    )
    accounts["alipay"] = account.id

    bank = bank_simulator(sandbox)
    bank_key = generate_rsa_key()
    mer_id = f"777290{c.ids.next_int() % 10**9:09d}"
    cert_id = str(10**10 + c.ids.next_int() % (9 * 10**10))
    bank.register_merchant(mer_id, cert_id, public_key_pem(bank_key))
    account = await c.channels.create_account(
        ChannelAccountCreate(
            channel="bank",
            name="Bank simulator",
            cost_ppm=SIMULATOR_COST_PPM,
            config={
                "mer_id": mer_id,
                "cert_id": cert_id,
                "private_key_pem": private_key_pem(bank_key),
                "bank_public_key_pem": bank.public_key_pem,
                **BankSimulator.urls(sandbox_url),
            },
        )
    )
    accounts["bank"] = account.id

    wechat = wechat_simulator(sandbox)
    wechat_key = generate_rsa_key()
    mchid = f"19{c.ids.next_int() % 10**8:08d}"
    serial_no = secrets.token_hex(20).upper()
    api_v3_key = secrets.token_hex(16)
    api_v2_key = secrets.token_hex(16)  # payment codes (micropay) speak API v2
    wechat.register_merchant(mchid, serial_no, public_key_pem(wechat_key), api_v3_key, api_v2_key=api_v2_key)
    account = await c.channels.create_account(
        ChannelAccountCreate(
            channel="wechat",
            name="WeChat Pay simulator",
            cost_ppm=SIMULATOR_COST_PPM,
            config={
                "mchid": mchid,
                "appid": f"wx{secrets.token_hex(8)}",
                "serial_no": serial_no,
                "private_key_pem": private_key_pem(wechat_key),
                "api_v3_key": api_v3_key,
                "api_v2_key": api_v2_key,
                "platform_public_key_pem": wechat.public_key_pem,
                "platform_public_key_id": wechat.public_key_id,
                "base_url": sandbox_url,
            },
        )
    )
    accounts["wechat"] = account.id
    for channel, account_id in accounts.items():
        methods = [m for m, ch in CHANNEL_OF.items() if ch == channel]
        await c.channels.create_rule(
            RoutingRuleCreate.model_validate(
                {
                    "rank": 0,
                    "pay_methods": [m.value for m in methods],
                    "candidates": [{"channel_account_id": account_id, "priority": 1, "weight": 100}],
                }
            )
        )
    # a payer's code names its channel: one rule holds every channel's account, routing keeps the code's own
    await c.channels.create_rule(
        RoutingRuleCreate.model_validate(
            {
                "rank": 0,
                "pay_methods": [PayMethod.BARCODE.value],
                "candidates": [{"channel_account_id": a, "priority": 1, "weight": 100} for a in accounts.values()],
            }
        )
    )
    return accounts


async def seed_demo_merchant(c: Container, notify_url: str | None) -> tuple[str, str, str, str, str]:
    """A merchant with an HMAC app and an RSA app, every pay method enabled, on the demo fee plan (6,000 ppm for
    every pay method, proportional refund fee): (mch_no, app, secret, rsa app, key)."""
    merchant = await c.merchants.create_merchant(MerchantCreate(name="Demo Merchant"))
    every = [PayMethod(m) for m in PayMethod]
    plan = await c.merchants.create_fee_plan(
        FeePlanCreate(name="Demo 0.60 %", rates={m: DEMO_FEE_PPM for m in every}, refund_fee="proportional")
    )
    await c.merchants.assign_fee_plan(merchant.mch_no, FeePlanAssign(fee_plan_id=plan.id))
    hmac_app = await c.merchants.create_app(
        merchant.mch_no, AppCreate(name="demo-hmac", notify_url=notify_url, pay_methods=every)
    )
    rsa_key = generate_rsa_key()
    rsa_app = await c.merchants.create_app(
        merchant.mch_no,
        AppCreate(
            name="demo-rsa",
            sign_type="RSA-SHA256",
            public_key_pem=public_key_pem(rsa_key),
            notify_url=notify_url,
            pay_methods=every,
        ),
    )
    assert hmac_app.secret is not None
    return merchant.mch_no, hmac_app.app.app_id, hmac_app.secret, rsa_app.app.app_id, private_key_pem(rsa_key)


async def seed_dev(c: Container, sandbox: SandboxState, sandbox_url: str, notify_url: str | None) -> DevCredentials:
    accounts = await seed_channel_accounts(c, sandbox, sandbox_url)
    mch_no, app_id, secret, rsa_app_id, rsa_private = await seed_demo_merchant(c, notify_url)
    providers = await seed_service_providers(c, sandbox, sandbox_url, mch_no, SIMULATOR_COST_PPM)
    tokens = {role: await c.merchants.create_admin_token(role, name=f"dev-{role}") for role in ("operator", "finance")}
    platform = await c.merchants.platform_signer()
    owner = await c.merchants.users.invite(mch_no, PortalInvite(email=DEMO_OWNER, role="owner"), "tomato dev")
    return DevCredentials(
        mch_no=mch_no,
        app_id=app_id,
        app_secret=secret,
        rsa_app_id=rsa_app_id,
        rsa_private_key_pem=rsa_private,
        platform_public_key_pem=platform.public_key_pem,
        admin_tokens=tokens,
        channel_accounts=accounts,
        service_provider_accounts=providers,
        portal_invite_path=f"/portal/invite/{owner.invite_token}",
    )
