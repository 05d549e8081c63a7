"""The developer's pages: the merchant's apps, their keys (rotate with an overlap, delete) and default notify_url.

Every action goes through the merchant service call the admin API uses (same validation and error codes). An app
or key of another merchant is `404`, the same answer as an id that does not exist. A new HMAC secret is shown once,
on the answer to the form that made it; a reload re-posts and is refused (an app keeps at most two active keys).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.portal import audit
from tomato.gateway.portal.guard import form_of, portal_route, viewer_of
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import DEVELOPERS
from tomato.merchant.errors import AppNotFound, KeyNotFound
from tomato.merchant.schemas import AppUpdate, AppView, KeyRotate

router = APIRouter(prefix="/portal", route_class=portal_route(*DEVELOPERS), include_in_schema=False)

AppId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


async def own_app(request: Request, app_id: str) -> AppView:
    """The app if it is the signed-in merchant's; otherwise the very error an unknown app_id gives."""
    app = await container(request).merchants.get_app(app_id)
    if app.mch_no != viewer_of(request).mch_no:
        raise AppNotFound(f"app {app_id} not found")
    return app


@router.get("/apps")
async def apps(request: Request) -> Response:
    merchant = await container(request).merchants.get_merchant(viewer_of(request).mch_no)
    return html(request, "dev_apps.html", apps=merchant.apps)


@router.get("/apps/{app_id}")
async def app(app_id: AppId, request: Request) -> Response:
    return html(request, "dev_app.html", app=await own_app(request, app_id), created=None)


@router.post("/apps/{app_id}/keys")
async def rotate_key(app_id: AppId, request: Request) -> Response:
    """Adds a key beside the current one (the overlap): both verify requests, and webhooks carry one signature per
    active HMAC secret, until the old key is deleted."""
    before = await own_app(request, app_id)
    cmd = KeyRotate(public_key_pem=form_of(request).get("public_key_pem"))
    created = await container(request).merchants.rotate_key(app_id, cmd)
    after = {"key_id": created.key_id, "app": audit.view(created.app)}  # never the secret itself
    await audit.record(request, "app_key.rotate", app_id, before, after)
    if created.secret is None:  # an RSA app: the merchant holds the private key, nothing to show
        return redirect(f"/portal/apps/{app_id}?ok=portal_key_added")
    return html(request, "dev_app.html", status=201, app=created.app, created=created)


@router.post("/apps/{app_id}/keys/{key_id}/delete")
async def delete_key(app_id: AppId, key_id: KeyId, request: Request) -> Response:
    """The last active key cannot go (the service's Conflict is the error page)."""
    before = await own_app(request, app_id)
    if all(k.key_id != key_id for k in before.keys):
        raise KeyNotFound(f"active key {key_id} not found")
    after = await container(request).merchants.remove_key(app_id, key_id)
    await audit.record(request, "app_key.delete", app_id, before, after)
    return redirect(f"/portal/apps/{app_id}?ok=portal_key_deleted")


@router.post("/apps/{app_id}/notify-url")
async def set_notify_url(app_id: AppId, request: Request) -> Response:
    """The admin API's validation (an http(s) URL, the SSRF rules); an empty field removes the default URL."""
    before = await own_app(request, app_id)
    cmd = AppUpdate.model_validate({"notify_url": form_of(request).get("notify_url")})
    after = await container(request).merchants.update_app(app_id, cmd)
    await audit.record(request, "app.notify_url", app_id, {"notify_url": before.notify_url},
                       {"notify_url": after.notify_url})  # fmt: skip
    return redirect(f"/portal/apps/{app_id}?ok=portal_notify_url_saved")
