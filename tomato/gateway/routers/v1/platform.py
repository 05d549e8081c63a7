"""The platform's RSA public key, for verifying responses and webhooks of RSA apps."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tomato.gateway.deps import container
from tomato.gateway.signed_route import SignedRoute

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: platform"])


@router.get("/platform-key")
async def platform_key(request: Request) -> dict[str, str]:
    signer = await container(request).merchants.platform_signer()
    return {"algorithm": "RSA-SHA256", "key_id": signer.key_id, "public_key_pem": signer.public_key_pem}
