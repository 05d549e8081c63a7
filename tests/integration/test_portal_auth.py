"""Issue 23, the portal's doors: invitations (operator API and owner page), argon2 passwords, TOTP (required for
the owner, single-use codes), lockout after five failures, sessions that end when the user is changed, CSRF on every
form and roles checked on the server."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from tests.fixtures.console_client import ConsoleUser, csrf_of
from tests.fixtures.pay_stack import PUBLIC_URL, PayStack
from tests.fixtures.portal_client import PASSWORD, Credentials, PortalUser, make_user
from tests.fixtures.stack import admin
from tomato.merchant.admin_schemas import AuditFilter
from tomato.merchant.errors import PortalUserConflict
from tomato.merchant.portal_schemas import PortalInvite
from tomato.merchant.schemas import MerchantCreate
from tomato.merchant.user_models import MerchantUser


async def _mch_no(pay: PayStack) -> str:
    return (await pay.c.merchants.list_merchants(None, 10))[0].mch_no


async def test_operator_invites_an_owner_who_must_turn_on_totp(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    r = await pay.http.post(f"/admin/merchants/{mch_no}/portal-users", json={"email": "Boss@Shop.example",
                            "role": "owner"}, headers=admin("operator"))  # fmt: skip
    assert r.status_code == 201, r.text
    token, user = r.json()["invite_token"], r.json()["user"]
    assert user["status"] == "INVITED" and user["email"] == "boss@shop.example"
    again = await pay.http.post(f"/admin/merchants/{mch_no}/portal-users", json={"email": "boss@shop.example",
                                "role": "support"}, headers=admin("operator"))  # fmt: skip
    assert again.status_code == 409 and again.json()["error"]["code"] == "USER_CONFLICT"

    page = await pay.http.get(f"/portal/invite/{token}")
    assert page.status_code == 200 and 'id="totp-required"' in page.text
    secret = page.text.split('id="totp-secret">')[1].split("<")[0]
    form = {"csrf_token": csrf_of(page), "password": PASSWORD, "password_again": PASSWORD}
    no_code = await pay.http.post(f"/portal/invite/{token}", data=form)
    assert no_code.status_code == 422 and "totp_code" in no_code.text  # an owner cannot skip two-factor
    page = await pay.http.get(f"/portal/invite/{token}")
    code = pyotp.TOTP(secret).at(pay.c.clock.timestamp())
    done = await pay.http.post(f"/portal/invite/{token}", data={**form, "csrf_token": csrf_of(page), "code": code})
    assert done.status_code == 303 and done.headers["location"].startswith("/portal")
    assert (await pay.http.get("/portal")).status_code == 200  # signed in by accepting
    used = await pay.http.get(f"/portal/invite/{token}")
    assert used.status_code == 404  # an invitation works once

    async with pay.c.db.uow() as uow:
        row = await uow.session.get(MerchantUser, user["user_id"])
        assert row is not None and row.password_hash is not None and row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in (row.totp_secret_ciphertext or "") and secret not in (row.totp_secret_ciphertext or "")


async def test_totp_sign_in_refuses_a_replayed_code(pay: PayStack) -> None:
    who = await make_user(pay.c, await _mch_no(pay), "developer", totp=True)
    u = PortalUser(pay.http, pay.c)
    assert (await u.sign_in(who)).status_code == 303
    assert (await u.get("/portal")).status_code == 200
    await u.post("/portal/logout")
    # the same 30 s step again: the code was used, so it is refused
    page = await pay.http.get("/portal/login")
    r = await pay.http.post("/portal/login", data={"csrf_token": csrf_of(page), "email": who.email,
                                                     "password": who.password})  # fmt: skip
    assert r.headers["location"].startswith("/portal/login/code")
    code_page = await pay.http.get("/portal/login/code")
    assert who.totp_secret is not None
    code = pyotp.TOTP(who.totp_secret).at(pay.c.clock.timestamp())
    replay = await pay.http.post("/portal/login/code", data={"csrf_token": csrf_of(code_page), "code": code})
    assert replay.status_code == 401
    assert (await pay.http.get("/portal", follow_redirects=False)).status_code == 303  # not signed in


async def test_five_wrong_passwords_lock_the_account_for_a_while(pay: PayStack) -> None:
    who = await make_user(pay.c, await _mch_no(pay), "support")
    u = PortalUser(pay.http, pay.c)
    for _ in range(4):
        assert (await u.sign_in(who, password="not the password")).status_code == 401
    fifth = await u.sign_in(who, password="not the password")
    assert fifth.status_code == 401
    locked = await u.sign_in(who)  # the right password now changes nothing
    assert locked.status_code == 423 and "locked" in locked.text
    pay.c.clock.advance(timedelta(minutes=15, seconds=1))  # type: ignore[attr-defined]
    assert (await u.sign_in(who)).status_code == 303


async def test_roles_csrf_and_ended_sessions(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    owner = await make_user(pay.c, mch_no, "owner")
    support = await make_user(pay.c, mch_no, "support")
    boss, helper = PortalUser(pay.http, pay.c), PortalUser(pay.http.__class__(transport=pay.http._transport,
                                                               base_url=pay.http.base_url), pay.c)  # fmt: skip
    async with helper.http:
        assert (await boss.sign_in(owner)).status_code == 303
        assert (await helper.sign_in(support)).status_code == 303
        assert (await helper.get("/portal/users")).status_code == 403  # only the owner manages users

        forged = await boss.post("/portal/users", {"email": "x@example.com", "role": "support"}, csrf="")
        assert forged.status_code == 403 and "CSRF" in forged.text
        wrong = await boss.post("/portal/users", {"email": "x@example.com", "role": "support"}, csrf="forged")
        assert wrong.status_code == 403
        assert all(u.email != "x@example.com" for u in await pay.c.merchants.users.list_users(mch_no))

        invited = await boss.post("/portal/users", {"email": "dev@example.com", "role": "developer"})
        assert invited.status_code == 201 and "/portal/invite/" in invited.text
        changed = await boss.post(f"/portal/users/{support.user_id}/role", {"role": "finance"})
        assert changed.status_code == 303
        ended = await helper.get("/portal", follow_redirects=False)  # the role changed: signed out at once
        assert ended.status_code == 303 and "reason=revoked" in ended.headers["location"]

        trail = await pay.c.merchants.list_admin_audit(AuditFilter(mch_no=mch_no), None, 10)
        assert [e.action for e in trail][:2] == ["portal_user.role", "portal_user.invite"]
        assert trail[0].via == "portal" and trail[0].actor == f"portal:owner:{owner.email}"
        activity = await boss.get("/portal/activity")
        assert "portal_user.role" in activity.text


async def test_another_merchants_user_is_not_found(pay: PayStack) -> None:
    mine = await _mch_no(pay)
    other = await pay.c.merchants.create_merchant(MerchantCreate(name="Other"))
    owner = await make_user(pay.c, mine, "owner")
    theirs: Credentials = await make_user(pay.c, other.mch_no, "support")
    u = PortalUser(pay.http, pay.c)
    assert (await u.sign_in(owner)).status_code == 303
    for path, body in ((f"/portal/users/{theirs.user_id}/role", {"role": "owner"}),
                       (f"/portal/users/{theirs.user_id}/disable", {})):  # fmt: skip
        r = await u.post(path, body)
        assert r.status_code == 404, (path, r.status_code)
    assert (await pay.c.merchants.users.get_user(other.mch_no, theirs.user_id)).role == "support"


async def test_operator_invites_from_the_console(pay: PayStack) -> None:
    mch_no = await _mch_no(pay)
    operator = ConsoleUser(pay.http)
    await operator.sign_in("operator")
    await operator.get(f"/console/merchants/{mch_no}")
    r = await operator.post(f"/console/merchants/{mch_no}/portal-users", {"email": "cs@example.com", "role": "support"})
    assert r.status_code == 201 and 'id="invite-link"' in r.text
    link = r.text.split('id="invite-link">')[1].split("<")[0]
    assert link.startswith(f"{PUBLIC_URL}/portal/invite/")
    invited = await pay.http.get(link.removeprefix(PUBLIC_URL))
    assert invited.status_code == 200 and "cs@example.com" in invited.text
    (user,) = await pay.c.merchants.users.list_users(mch_no)
    assert user.role == "support" and user.invited_by.startswith("console:")


async def test_a_disabled_user_invited_again_starts_over(pay: PayStack) -> None:
    """How a lost password or authenticator is replaced: disable, invite again; an active account stays a conflict."""
    mch_no = await _mch_no(pay)
    who = await make_user(pay.c, mch_no, "developer", totp=True)
    u = PortalUser(pay.http, pay.c)
    assert (await u.sign_in(who)).status_code == 303
    users = pay.c.merchants.users
    with pytest.raises(PortalUserConflict):
        await users.invite(mch_no, PortalInvite(email=who.email, role="support"), "test")
    await users.disable(mch_no, who.user_id)
    other = await pay.c.merchants.create_merchant(MerchantCreate(name="Other"))
    with pytest.raises(PortalUserConflict):  # another merchant cannot take the disabled account over
        await users.invite(other.mch_no, PortalInvite(email=who.email, role="owner"), "test")
    again = await users.invite(mch_no, PortalInvite(email=who.email, role="support"), "test")
    assert (again.user.user_id, again.user.status, again.user.role) == (who.user_id, "INVITED", "support")
    assert (await u.get("/portal", follow_redirects=False)).status_code == 303  # the old session stays ended
    assert (await u.sign_in(who)).status_code == 401  # the old password is gone
    details = await users.invite_details(again.invite_token)
    assert details.totp_secret != who.totp_secret
    await users.accept_invite(again.invite_token, "a brand new password", None, enable_totp=False)
    fresh = PortalUser(pay.http, pay.c)
    new = Credentials(who.user_id, who.email, "a brand new password", None)
    assert (await fresh.sign_in(new)).status_code == 303
