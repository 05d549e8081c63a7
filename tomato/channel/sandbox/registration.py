"""Wiring a standalone simulator (`tomato sandbox`) to a platform over HTTP.

`GET /sandbox/keys` gives each channel's public key (to configure channel accounts with); `POST /sandbox/apps`
registers a merchant-side public key under the channel's merchant id, as a channel's console would:

    {"channel": "alipay", "merchant_id": "<app_id>", "public_key_pem": "…"}
    {"channel": "bank", "merchant_id": "<merId>", "cert_id": "<decimal serial>", "public_key_pem": "…"}
    {"channel": "wechat", "merchant_id": "<mchid>", "serial_no": "<hex>", "api_v3_key": "<32 chars>",
     "public_key_pem": "…", "api_v2_key": "<32 chars>"?}

WeChat's optional `api_v2_key` signs the merchant's payment-code (付款码, API v2) calls; it is never echoed.
The bank also needs `cert_id`: ACP requests name their signing certificate by it and the simulator refuses any
other. Bad input answers 422 naming the field. `tomato dev` does the same in-process.

`POST /sandbox/authorizations` records a service provider's authorization by a sub-merchant, as the channel's partner
console would (docs/channels.md, "Service-provider accounts"; one model per channel, discriminated by `channel`); the
answer echoes everything but a token, 404 when the provider is unknown:

    {"channel": "alipay", "merchant_id": "<provider app_id>", "app_auth_token": "…", "auth_app_id": "<sub app_id>"}
    {"channel": "wechat", "merchant_id": "<sp_mchid>", "sub_mchid": "<digits>", "sub_appid": "<appid>"?}
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from tomato.channel.sandbox.alipay import AlipaySimulator
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.state import SandboxState
from tomato.channel.sandbox.wechat import WechatSimulator

PublicKeyPem = Annotated[str, Field(min_length=1, max_length=8192)]


class AlipayApp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay"]
    merchant_id: str = Field(min_length=1, max_length=64)  # app_id
    public_key_pem: PublicKeyPem


class BankMerchant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["bank"]
    merchant_id: str = Field(pattern=r"^[0-9A-Za-z]{15}$")  # merId: 15 letters or digits (§C2)
    cert_id: str = Field(pattern=r"^[0-9]{1,40}$")  # the merchant certificate's decimal serial
    public_key_pem: PublicKeyPem


class WechatMerchant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["wechat"]
    merchant_id: str = Field(pattern=r"^[0-9]{1,32}$")  # mchid
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{1,64}$")  # the merchant API certificate serial
    api_v3_key: str = Field(pattern=r"^[\x20-\x7e]{32}$")  # encrypts notifies
    public_key_pem: PublicKeyPem
    api_v2_key: str | None = Field(default=None, pattern=r"^[\x20-\x7e]{32}$", repr=False)  # signs v2 (barcode)


AppRegistration = Annotated[AlipayApp | BankMerchant | WechatMerchant, Field(discriminator="channel")]


class AlipayAuthorization(BaseModel):
    """Sub-merchant `auth_app_id` authorized provider app `merchant_id`, which acts for it with the token."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["alipay"]
    merchant_id: str = Field(min_length=1, max_length=64)  # the provider's app_id
    app_auth_token: str = Field(pattern=r"^[0-9A-Za-z._-]{1,128}$", repr=False)
    auth_app_id: str = Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")


class WechatAuthorization(BaseModel):
    """A WeChat Pay provider (服务商, `merchant_id` = sp_mchid) authorized for a sub-merchant (受理关系)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["wechat"]
    merchant_id: str = Field(pattern=r"^[0-9]{1,32}$")  # sp_mchid, registered with POST /sandbox/apps
    sub_mchid: str = Field(pattern=r"^[0-9]{1,32}$")
    sub_appid: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]{1,32}$")


AuthorizationRegistration = Annotated[AlipayAuthorization | WechatAuthorization, Field(discriminator="channel")]


def create_registration_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox", include_in_schema=False)

    @router.get("/keys")
    async def keys() -> dict[str, str]:
        keys = {name: sim.public_key_pem for name, sim in state.simulators.items() if hasattr(sim, "public_key_pem")}
        wechat = state.simulators.get("wechat")
        if isinstance(wechat, WechatSimulator):
            keys["wechat_public_key_id"] = wechat.public_key_id
        bank = state.simulators.get("bank")
        if isinstance(bank, BankSimulator):
            keys["bank_cert_id"] = bank.cert_id
        return keys

    @router.post("/apps")
    async def register(body: AppRegistration) -> dict[str, str]:
        simulator = state.simulators.get(body.channel)
        try:
            if isinstance(body, BankMerchant) and isinstance(simulator, BankSimulator):
                simulator.register_merchant(body.merchant_id, body.cert_id, body.public_key_pem)
                return {"channel": body.channel, "merchant_id": body.merchant_id, "cert_id": body.cert_id}
            if isinstance(body, WechatMerchant) and isinstance(simulator, WechatSimulator):
                simulator.register_merchant(
                    body.merchant_id, body.serial_no, body.public_key_pem, body.api_v3_key, body.api_v2_key
                )
                return {
                    "channel": body.channel,
                    "merchant_id": body.merchant_id,
                    "public_key_id": simulator.public_key_id,
                }
            if isinstance(body, AlipayApp) and isinstance(simulator, AlipaySimulator):
                simulator.register_app(body.merchant_id, body.public_key_pem)
                return {"channel": body.channel, "merchant_id": body.merchant_id}
        except ValueError as exc:
            raise HTTPException(422, f"public_key_pem: {exc}") from exc
        raise HTTPException(404, f"no {body.channel} simulator")

    @router.post("/authorizations")
    async def authorize(body: AuthorizationRegistration) -> dict[str, str | None]:
        simulator = state.simulators.get(body.channel)
        if isinstance(body, AlipayAuthorization) and isinstance(simulator, AlipaySimulator):
            try:
                simulator.authorize(body.merchant_id, body.app_auth_token, body.auth_app_id)
            except LookupError as exc:
                raise HTTPException(404, f"merchant_id: {exc}") from None
            return {"channel": body.channel, "merchant_id": body.merchant_id, "auth_app_id": body.auth_app_id}
        if isinstance(body, WechatAuthorization) and isinstance(simulator, WechatSimulator):
            if body.sub_mchid == body.merchant_id:
                raise HTTPException(422, "sub_mchid: must be another merchant than the provider")
            try:
                simulator.register_sub_merchant(body.merchant_id, body.sub_mchid, body.sub_appid)
            except KeyError:
                raise HTTPException(404, f"merchant_id: no wechat provider {body.merchant_id}") from None
            except ValueError as exc:
                raise HTTPException(422, f"sub_mchid: {exc}") from exc
            return body.model_dump()
        raise HTTPException(404, f"no {body.channel} simulator")

    return router
