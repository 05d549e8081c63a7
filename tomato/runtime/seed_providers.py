"""Seeding a dev stack's service-provider accounts: an Alipay ISV app and a WeChat Pay partner (服务商) merchant at
the simulators, each authorized by a sub-merchant, and the demo merchant's identity under each.

No routing rule names them (the seeded rank-0 rules keep every method on the direct accounts): an operator routes a
merchant's orders to a provider with a rule, as docs/channels.md shows.
"""

from __future__ import annotations

import secrets

from tomato.bootstrap import Container
from tomato.channel.sandbox.app import alipay_simulator, wechat_simulator
from tomato.channel.sandbox.state import SandboxState
from tomato.channel.schemas import ChannelAccountCreate, ChannelIdentityCreate
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem


async def seed_service_providers(
    c: Container, sandbox: SandboxState, sandbox_url: str, mch_no: str, cost_ppm: int
) -> dict[str, str]:
    """{"alipay": the ISV account id, "wechat": the partner account id}, each with an identity for `mch_no`."""
    return {
        "alipay": await _alipay_isv(c, sandbox, sandbox_url, mch_no, cost_ppm),
        "wechat": await _wechat_partner(c, sandbox, sandbox_url, mch_no, cost_ppm),
    }


async def _alipay_isv(c: Container, sandbox: SandboxState, sandbox_url: str, mch_no: str, cost_ppm: int) -> str:
    alipay = alipay_simulator(sandbox)
    key = generate_rsa_key()
    provider_app_id = f"20210002{c.ids.next_int() % 10**8:08d}"
    auth_app_id = f"20210003{c.ids.next_int() % 10**8:08d}"
    token = f"202612BB{secrets.token_hex(16)}"
    alipay.register_app(provider_app_id, public_key_pem(key))
    alipay.authorize(provider_app_id, token, auth_app_id)
    account = await c.channels.create_account(
        ChannelAccountCreate(
            channel="alipay",
            name="Alipay ISV simulator",
            mode="isv",
            cost_ppm=cost_ppm,
            config={
                "app_id": provider_app_id,
                "private_key_pem": private_key_pem(key),
                "alipay_public_key_pem": alipay.public_key_pem,
                "gateway_url": f"{sandbox_url}/alipay/gateway.do",
            },
        )
    )
    await c.channels.create_identity(
        mch_no, ChannelIdentityCreate(channel_account_id=account.id, app_auth_token=token, auth_app_id=auth_app_id)
    )
    return account.id


async def _wechat_partner(c: Container, sandbox: SandboxState, sandbox_url: str, mch_no: str, cost_ppm: int) -> str:
    wechat = wechat_simulator(sandbox)
    key = generate_rsa_key()
    sp_mchid = f"16{c.ids.next_int() % 10**8:08d}"
    sub_mchid = f"17{c.ids.next_int() % 10**8:08d}"
    serial_no = secrets.token_hex(20).upper()
    api_v3_key = secrets.token_hex(16)
    wechat.register_merchant(sp_mchid, serial_no, public_key_pem(key), api_v3_key)
    wechat.register_sub_merchant(sp_mchid, sub_mchid)
    account = await c.channels.create_account(
        ChannelAccountCreate(
            channel="wechat",
            name="WeChat Pay partner simulator",
            mode="partner",
            cost_ppm=cost_ppm,
            config={
                "sp_mchid": sp_mchid,
                "sp_appid": f"wx{secrets.token_hex(8)}",
                "serial_no": serial_no,
                "private_key_pem": private_key_pem(key),
                "api_v3_key": api_v3_key,
                "platform_public_key_pem": wechat.public_key_pem,
                "platform_public_key_id": wechat.public_key_id,
                "base_url": sandbox_url,
            },
        )
    )
    await c.channels.create_identity(mch_no, ChannelIdentityCreate(channel_account_id=account.id, sub_mchid=sub_mchid))
    return account.id
