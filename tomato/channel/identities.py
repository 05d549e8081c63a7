"""Merchants' identities under service-provider accounts (docs/channels.md, "Service-provider accounts").

A service-provider account (Alipay `isv`, WeChat Pay `partner`) pays for many merchants under the provider's own
app; each merchant it may act for has an identity here. Routing sends a merchant's order to such an account only
while the merchant has an ACTIVE identity on it; the orders made under an identity keep using it after it is
disabled (queries, closes, refunds and statements), so identities are never deleted. The Alipay token is a secret:
sealed with the account-independent context `channel-identity:<id>` and never returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.errors import ChannelIdentityConflict, ChannelIdentityNotFound
from tomato.channel.models import ChannelAccount, ChannelIdentity
from tomato.channel.protocol import SubMerchant
from tomato.channel.schemas import SERVICE_PROVIDER_MODES, ChannelIdentityCreate, ChannelIdentityView
from tomato.core.clock import utcnow
from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake

# the fields each service-provider mode takes, and which of them it needs
_FIELDS = {
    "isv": (("app_auth_token", "auth_app_id"), ("app_auth_token", "auth_app_id")),
    "partner": (("sub_mchid", "sub_appid"), ("sub_mchid",)),
}
_ALL_FIELDS = ("app_auth_token", "auth_app_id", "sub_mchid", "sub_appid")


@dataclass(frozen=True)
class ActiveIdentities:
    """Which (account, merchant) pairs have an ACTIVE identity: what routing consults for every order."""

    pairs: frozenset[tuple[str, str]]

    def allows(self, account: ChannelAccount, mch_no: str | None) -> bool:
        """A direct account serves everyone; a service provider only the merchants with an active identity."""
        if account.mode not in SERVICE_PROVIDER_MODES:
            return True
        return mch_no is not None and (account.id, mch_no) in self.pairs


def check_fields(mode: str, cmd: ChannelIdentityCreate) -> None:
    """422 naming the first field that does not fit the account's mode, or a needed one that is missing."""
    allowed, needed = _FIELDS[mode]
    for name in _ALL_FIELDS:
        if getattr(cmd, name) is not None and name not in allowed:
            raise InvalidRequest.field(name, f"does not apply to a {mode} account")
    for name in needed:
        if getattr(cmd, name) is None:
            raise InvalidRequest.field(name, f"required for a {mode} account")


class IdentityStore:
    def __init__(self, db: Database, box: SecretBox, ids: Snowflake) -> None:
        self._db = db
        self._box = box
        self._ids = ids

    async def create(self, account: ChannelAccount, mch_no: str, cmd: ChannelIdentityCreate) -> ChannelIdentityView:
        if account.mode not in SERVICE_PROVIDER_MODES:
            raise InvalidRequest.field("channel_account_id", f"account {account.id} is not a service-provider account")
        check_fields(account.mode, cmd)
        now = utcnow()
        row = ChannelIdentity(
            id=f"CI{self._ids.next_int()}",
            channel_account_id=account.id,
            mch_no=mch_no,
            status="ACTIVE",
            auth_app_id=cmd.auth_app_id,
            sub_mchid=cmd.sub_mchid,
            sub_appid=cmd.sub_appid,
            secret_ciphertext=None,
            created_at=now,
            updated_at=now,
        )
        if cmd.app_auth_token is not None:
            row.secret_ciphertext = self._box.encrypt(cmd.app_auth_token, context=f"channel-identity:{row.id}")
        try:
            async with self._db.uow() as uow:
                uow.session.add(row)
                await uow.commit()
        except IntegrityError as exc:  # the partial unique index: one ACTIVE identity per account and merchant
            raise ChannelIdentityConflict(
                f"merchant {mch_no} already has an active identity on {account.id}; disable it first"
            ) from exc
        return view_of(row)

    async def of_merchant(self, mch_no: str) -> list[ChannelIdentityView]:
        q = select(ChannelIdentity).where(ChannelIdentity.mch_no == mch_no).order_by(ChannelIdentity.id)
        async with self._db.uow() as uow:
            return [view_of(r) for r in (await uow.session.scalars(q)).all()]

    async def disable(self, identity_id: str) -> tuple[ChannelIdentityView, ChannelIdentityView]:
        """(before, after); disabling a disabled identity changes nothing."""
        async with self._db.uow() as uow:
            row = await uow.session.get(ChannelIdentity, identity_id)
            if row is None:
                raise ChannelIdentityNotFound(f"channel identity {identity_id} not found")
            before = view_of(row)
            await uow.session.execute(
                update(ChannelIdentity)
                .where(ChannelIdentity.id == identity_id)
                .values(status="DISABLED", updated_at=utcnow())
            )
            await uow.commit()
        return before, before.model_copy(update={"status": "DISABLED"})

    @staticmethod
    async def active(session: AsyncSession) -> ActiveIdentities:
        q = select(ChannelIdentity.channel_account_id, ChannelIdentity.mch_no).where(ChannelIdentity.status == "ACTIVE")
        return ActiveIdentities(frozenset((a, m) for a, m in (await session.execute(q)).all()))

    async def sub_merchant(self, account_id: str, mch_no: str) -> SubMerchant | None:
        """The identity the provider acts for `mch_no` with: the ACTIVE one, else the last one disabled (its
        orders are still followed up); None when the merchant never had one on the account."""
        q = (
            select(ChannelIdentity)
            .where(ChannelIdentity.channel_account_id == account_id, ChannelIdentity.mch_no == mch_no)
            .order_by((ChannelIdentity.status == "ACTIVE").desc(), ChannelIdentity.created_at.desc())
            .limit(1)
        )
        async with self._db.uow() as uow:
            row = (await uow.session.scalars(q)).first()
        return None if row is None else self._sub(row)

    async def sub_merchants(self, account_id: str) -> list[SubMerchant]:
        """Every sub-merchant the account ever acted for, active or not: a day's statement is all of theirs."""
        q = select(ChannelIdentity).where(ChannelIdentity.channel_account_id == account_id).order_by(ChannelIdentity.id)
        async with self._db.uow() as uow:
            rows = (await uow.session.scalars(q)).all()
        return _distinct(self._sub(r) for r in rows)

    def _sub(self, row: ChannelIdentity) -> SubMerchant:
        token = None
        if row.secret_ciphertext is not None:
            token = self._box.decrypt(row.secret_ciphertext, context=f"channel-identity:{row.id}")
        return SubMerchant(
            app_auth_token=token, auth_app_id=row.auth_app_id, sub_mchid=row.sub_mchid, sub_appid=row.sub_appid
        )


def _distinct(subs: Iterable[SubMerchant]) -> list[SubMerchant]:
    """One per sub-merchant id, the newest (a merchant re-attached to the same sub-merchant has two identities and
    one bill; the newer token is the one that works)."""
    seen: dict[str | None, SubMerchant] = {}
    for sub in subs:
        seen[sub.notify_id] = sub
    return list(seen.values())


def view_of(row: ChannelIdentity) -> ChannelIdentityView:
    return ChannelIdentityView(
        id=row.id,
        channel_account_id=row.channel_account_id,
        mch_no=row.mch_no,
        status=row.status,
        auth_app_id=row.auth_app_id,
        sub_mchid=row.sub_mchid,
        sub_appid=row.sub_appid,
        created_at=row.created_at,
    )
