"""The merchant portal's users: invitations, passwords (argon2id), TOTP two-factor, lockout and sessions' epochs.

An invitation is a random token (only its SHA-256 is stored) that lets the person set a password within a week;
the TOTP secret is made with the invitation, sealed with the platform key ring and shown on the invitation page.
Owners must turn TOTP on; the other roles may. Five failed sign-ins in a row (password or code) lock the account
for 15 minutes; while locked even the right password is refused, so guessing gains nothing. Every state change is
one guarded UPDATE, so two racing requests cannot both win.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from datetime import timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError

from tomato.core.clock import Clock, as_utc
from tomato.core.crypto import SecretBox, random_token, sha256_hex
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake
from tomato.merchant import repository as repo
from tomato.merchant.errors import (
    AccountLocked,
    InviteNotFound,
    MerchantNotFound,
    PortalUserConflict,
    PortalUserNotFound,
    SignInFailed,
)
from tomato.merchant.portal_schemas import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    PORTAL_ROLES,
    InviteDetails,
    Member,
    PortalInvitation,
    PortalInvite,
    PortalUserView,
)
from tomato.merchant.user_models import MerchantUser

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
INVITE_TTL = timedelta(days=7)
TOTP_STEP_S = 30
TOTP_CONTEXT = "merchant-user-totp/v1"
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,63}")
_CODE = re.compile(r"[0-9]{6}", re.ASCII)
_HASHER = PasswordHasher()  # argon2id, the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("a password nobody has")  # checked for unknown emails: every sign-in costs the same


def normal_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise InvalidRequest.field("email", "must be an email address")
    return email


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest.field("password", f"must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")


def view(u: MerchantUser) -> PortalUserView:
    return PortalUserView(
        user_id=u.user_id, mch_no=u.mch_no, email=u.email, role=u.role, status=u.status,
        totp_enabled=u.totp_enabled, locked_until=u.locked_until, invited_by=u.invited_by,
        created_at=u.created_at, last_login_at=u.last_login_at,
    )  # fmt: skip


def member(u: MerchantUser) -> Member:
    return Member(user_id=u.user_id, mch_no=u.mch_no, email=u.email, role=u.role, session_epoch=u.session_epoch)


class PortalUsers:
    def __init__(self, db: Database, box: SecretBox, ids: Snowflake, clock: Clock) -> None:
        self._db, self._box, self._ids, self._clock = db, box, ids, clock

    # --- invitations ----------------------------------------------------------------------------------------

    async def invite(self, mch_no: str, cmd: PortalInvite, invited_by: str) -> PortalInvitation:
        """A new user of `mch_no` in INVITED (or a disabled one again); the token is returned once (the inviter hands
        the link over)."""
        if cmd.role not in PORTAL_ROLES:
            raise InvalidRequest.field("role", f"must be one of {', '.join(PORTAL_ROLES)}")
        email = normal_email(cmd.email)
        token = random_token(24)
        now = self._clock.now()
        async with self._db.uow() as uow:
            if await repo.get_merchant(uow.session, mch_no) is None:
                raise MerchantNotFound(f"merchant {mch_no} not found")
            row = MerchantUser(
                user_id=self._ids.next_id("U"), mch_no=mch_no, email=email, role=cmd.role, status="INVITED",
                password_hash=None,
                totp_secret_ciphertext=self._box.encrypt(pyotp.random_base32(), context=TOTP_CONTEXT),
                totp_enabled=False, totp_last_step=0, failed_logins=0, locked_until=None,
                invite_token_hash=sha256_hex(token.encode()), invite_expires_at=now + INVITE_TTL,
                invited_by=invited_by[:160], session_epoch=1, created_at=now, updated_at=now, last_login_at=None,
            )  # fmt: skip
            uow.session.add(row)
            try:
                await uow.commit()
                taken = False
            except IntegrityError:
                taken = True
        if taken:  # the email has an account: only a disabled one of this merchant may be invited again
            row = await self._reinvite(mch_no, email, cmd.role, token, invited_by)
        return PortalInvitation(user=view(row), invite_token=token, invite_expires_at=now + INVITE_TTL)

    async def _reinvite(self, mch_no: str, email: str, role: str, token: str, invited_by: str) -> MerchantUser:
        """A DISABLED user of the same merchant invited again (how a lost password or authenticator is replaced):
        the same user id starts over — no password, a new TOTP secret, a new link, every old session ended. Any
        other holder of the email is a conflict."""
        now = self._clock.now()
        async with self._db.uow() as uow:
            done = await uow.session.execute(
                update(MerchantUser)
                .where(MerchantUser.email == email, MerchantUser.mch_no == mch_no, MerchantUser.status == "DISABLED")
                .values(
                    role=role,
                    status="INVITED",
                    password_hash=None,
                    totp_enabled=False,
                    totp_last_step=0,
                    totp_secret_ciphertext=self._box.encrypt(pyotp.random_base32(), context=TOTP_CONTEXT),
                    failed_logins=0,
                    locked_until=None,
                    invite_token_hash=sha256_hex(token.encode()),
                    invite_expires_at=now + INVITE_TTL,
                    invited_by=invited_by[:160],
                    session_epoch=MerchantUser.session_epoch + 1,
                    updated_at=now,
                )  # fmt: skip
                .returning(MerchantUser.user_id)
            )
            user_id = done.scalar_one_or_none()
            if user_id is None:
                raise PortalUserConflict(f"{email} already has a portal account")
            await uow.commit()
        async with self._db.uow() as uow:
            row = await uow.session.get(MerchantUser, user_id)
        assert row is not None
        return row

    async def _invited(self, token: str) -> MerchantUser:
        if not token or len(token) > 128:
            raise InviteNotFound("this invitation is unknown, used or expired")
        async with self._db.uow() as uow:
            row = await uow.session.scalar(
                select(MerchantUser).where(MerchantUser.invite_token_hash == sha256_hex(token.encode()))
            )
        if row is None or row.status != "INVITED" or row.invite_expires_at is None:
            raise InviteNotFound("this invitation is unknown, used or expired")
        if as_utc(row.invite_expires_at) <= self._clock.now():
            raise InviteNotFound("this invitation is unknown, used or expired")
        return row

    async def invite_details(self, token: str) -> InviteDetails:
        row = await self._invited(token)
        assert row.totp_secret_ciphertext is not None and row.invite_expires_at is not None
        return InviteDetails(
            email=row.email, role=row.role, mch_no=row.mch_no, totp_required=row.role == "owner",
            totp_secret=self._box.decrypt(row.totp_secret_ciphertext, context=TOTP_CONTEXT),
            expires_at=row.invite_expires_at,
        )  # fmt: skip

    async def accept_invite(self, token: str, password: str, totp_code: str | None, enable_totp: bool) -> Member:
        """Sets the password (and turns TOTP on when asked or required, proven by a current code): ACTIVE."""
        row = await self._invited(token)
        check_password(password)
        enable = enable_totp or row.role == "owner"
        step = self._matching_step(row, totp_code) if enable else 0
        if step is None:
            raise InvalidRequest.field("totp_code", "is not the current code of the authenticator")
        password_hash = await asyncio.to_thread(_HASHER.hash, password)
        now = self._clock.now()
        async with self._db.uow() as uow:
            done = await uow.session.execute(
                update(MerchantUser)
                .where(
                    MerchantUser.user_id == row.user_id,
                    MerchantUser.status == "INVITED",
                    MerchantUser.invite_token_hash == row.invite_token_hash,
                )  # fmt: skip
                .values(
                    status="ACTIVE",
                    password_hash=password_hash,
                    totp_enabled=enable,
                    totp_last_step=step,
                    invite_token_hash=None,
                    invite_expires_at=None,
                    updated_at=now,
                    last_login_at=now,
                )  # fmt: skip
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise InviteNotFound("this invitation is unknown, used or expired")
            await uow.commit()
        return await self.member_now(row.user_id)

    # --- sign-in --------------------------------------------------------------------------------------------

    async def sign_in(self, email: str, password: str) -> tuple[Member, bool]:
        """(who, whether a one-time code is still needed). Refused alike for an unknown email, a wrong password
        and a user not ACTIVE; a locked account is refused without looking at the password."""
        try:
            address = normal_email(email)
        except InvalidRequest:
            address = ""
        async with self._db.uow() as uow:
            row = await uow.session.scalar(select(MerchantUser).where(MerchantUser.email == address))
        if row is None or row.password_hash is None or row.status != "ACTIVE":
            await asyncio.to_thread(_verify, _DUMMY_HASH, password)
            raise SignInFailed("wrong email or password")
        self._refuse_if_locked(row)
        if not await asyncio.to_thread(_verify, row.password_hash, password[: MAX_PASSWORD * 4]):
            await self._failed(row.user_id)
            raise SignInFailed("wrong email or password")
        if row.totp_enabled:
            return member(row), True
        await self._succeeded(row.user_id)
        return member(row), False

    async def verify_totp(self, user_id: str, code: str | None) -> Member:
        """The second step: a current code not used before; a wrong one counts as a failed sign-in."""
        async with self._db.uow() as uow:
            row = await uow.session.get(MerchantUser, user_id)
        if row is None or row.status != "ACTIVE" or not row.totp_enabled:
            raise SignInFailed("sign in again")
        self._refuse_if_locked(row)
        step = self._matching_step(row, code)
        if step is None or step <= row.totp_last_step:
            await self._failed(user_id)
            raise SignInFailed("wrong one-time code")
        async with self._db.uow() as uow:
            done = await uow.session.execute(
                update(MerchantUser)
                .where(MerchantUser.user_id == user_id, MerchantUser.totp_last_step < step)
                .values(totp_last_step=step)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]  # the same code won a race elsewhere
                raise SignInFailed("wrong one-time code")
            await uow.commit()
        await self._succeeded(user_id)
        return await self.member_now(user_id)

    def _refuse_if_locked(self, row: MerchantUser) -> None:
        if row.locked_until is not None and as_utc(row.locked_until) > self._clock.now():
            raise AccountLocked("too many failed sign-ins: the account is locked for a while")

    def _matching_step(self, row: MerchantUser, code: str | None) -> int | None:
        """The 30 s step (now ± 1) whose code equals `code`, compared in constant time; None when none does."""
        if code is None or row.totp_secret_ciphertext is None or not _CODE.fullmatch(code):
            return None
        totp = pyotp.TOTP(self._box.decrypt(row.totp_secret_ciphertext, context=TOTP_CONTEXT))
        now_step = int(self._clock.timestamp()) // TOTP_STEP_S
        found = None
        for step in (now_step - 1, now_step, now_step + 1):
            if hmac.compare_digest(totp.at(step * TOTP_STEP_S).encode(), code.encode()):
                found = step
        return found

    async def _failed(self, user_id: str) -> None:
        """One more failure; the fifth in a row locks the account (and starts the count again)."""
        reaches = MerchantUser.failed_logins + 1 >= LOCK_AFTER
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(MerchantUser)
                .where(MerchantUser.user_id == user_id)
                .values(
                    failed_logins=case((reaches, 0), else_=MerchantUser.failed_logins + 1),
                    locked_until=case((reaches, self._clock.now() + LOCK_FOR), else_=MerchantUser.locked_until),
                )
            )
            await uow.commit()

    async def _succeeded(self, user_id: str) -> None:
        async with self._db.uow() as uow:
            await uow.session.execute(
                update(MerchantUser)
                .where(MerchantUser.user_id == user_id)
                .values(failed_logins=0, locked_until=None, last_login_at=self._clock.now())
            )
            await uow.commit()

    # --- sessions and management ----------------------------------------------------------------------------

    async def member(self, user_id: str, epoch: int) -> Member | None:
        """The signed-in user behind a session, None once disabled or after anything that bumped the epoch."""
        async with self._db.uow() as uow:
            row = await uow.session.get(MerchantUser, user_id)
        if row is None or row.status != "ACTIVE" or row.session_epoch != epoch:
            return None
        return member(row)

    async def member_now(self, user_id: str) -> Member:
        async with self._db.uow() as uow:
            row = await uow.session.get(MerchantUser, user_id)
        if row is None:
            raise PortalUserNotFound(f"user {user_id} not found")
        return member(row)

    async def list_users(self, mch_no: str) -> list[PortalUserView]:
        async with self._db.uow() as uow:
            rows = await uow.session.scalars(
                select(MerchantUser).where(MerchantUser.mch_no == mch_no).order_by(MerchantUser.created_at)
            )
            return [view(r) for r in rows]

    async def get_user(self, mch_no: str, user_id: str) -> PortalUserView:
        """Another merchant's user is "not found", like one that does not exist."""
        async with self._db.uow() as uow:
            row = await uow.session.get(MerchantUser, user_id)
        if row is None or row.mch_no != mch_no:
            raise PortalUserNotFound(f"user {user_id} not found")
        return view(row)

    async def set_role(self, mch_no: str, user_id: str, role: str) -> PortalUserView:
        if role not in PORTAL_ROLES:
            raise InvalidRequest.field("role", f"must be one of {', '.join(PORTAL_ROLES)}")
        return await self._change(mch_no, user_id, role=role)

    async def disable(self, mch_no: str, user_id: str) -> PortalUserView:
        return await self._change(mch_no, user_id, status="DISABLED")

    async def _change(self, mch_no: str, user_id: str, **values: str) -> PortalUserView:
        """Role or status, guarded on the merchant and on not being DISABLED; ends the user's sessions."""
        await self.get_user(mch_no, user_id)
        async with self._db.uow() as uow:
            done = await uow.session.execute(
                update(MerchantUser)
                .where(
                    MerchantUser.user_id == user_id, MerchantUser.mch_no == mch_no, MerchantUser.status != "DISABLED"
                )  # fmt: skip
                .values(**values, session_epoch=MerchantUser.session_epoch + 1, updated_at=self._clock.now())
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise PortalUserConflict(f"user {user_id} is disabled")
            await uow.commit()
        return await self.get_user(mch_no, user_id)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False
