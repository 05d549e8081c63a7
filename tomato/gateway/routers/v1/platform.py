"""The platform's RSA public key, for verifying responses and webhooks of RSA apps."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tomato.gateway.deps import container
from tomato.gateway.signed_route import SignedRoute

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: platform"])


class PlatformKey(BaseModel):
    algorithm: Literal["RSA-SHA256"] = Field(
        description="the signature algorithm of the platform's responses and webhooks to RSA apps"
    )
    key_id: str = Field(description="id of the platform key, to follow rotations")
    public_key_pem: str = Field(description="the platform's RSA public key (SPKI PEM) that verifies those signatures")


@router.get("/platform-key", response_model=PlatformKey)
async def platform_key(request: Request) -> PlatformKey:
    signer = await container(request).merchants.platform_signer()
    return PlatformKey(algorithm="RSA-SHA256", key_id=signer.key_id, public_key_pem=signer.public_key_pem)
