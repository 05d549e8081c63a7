"""Merchant use cases: onboarding, app keys and rotation, freezing, admin tokens, the platform key.

The only place in the context that opens a unit of work and commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.core.clock import Clock, SystemClock, utcnow
from tomato.core.crypto import (
    SecretBox,
    generate_rsa_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    random_token,
)
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake
from tomato.core.loadonce import LoadOnce
from tomato.core.netguard import check_literal
from tomato.merchant import repository as repo
from tomato.merchant.admin_schemas import AdminIdentity, AdminTokenCreated, AdminTokenView, AuditEntryView, AuditFilter
from tomato.merchant.audit import AdminAuditLog
from tomato.merchant.errors import (
    AppDisabled,
    AppNotFound,
    FeePlanNotFound,
    KeyNotFound,
    LastKey,
    MerchantFrozen,
    MerchantNotFound,
    PayMethodNotEnabled,
    TooManyKeys,
    UnknownApp,
)
from tomato.merchant.models import App, AppKey, FeePlan, Merchant, PlatformKey
from tomato.merchant.portal_users import PortalUsers
from tomato.merchant.schemas import (
    DEFAULT_SETTLE_CYCLE,
    AppAuth,
    AppCreate,
    AppCreated,
    AppUpdate,
    AppView,
    FeePlanAssign,
    FeePlanCreate,
    FeePlanView,
    FeeTerms,
    KeyRotate,
    MerchantCreate,
    MerchantView,
    SettleCycleUpdate,
)
from tomato.merchant.tokens import AdminTokens
from tomato.merchant.views import app_view, fee_plan_view, merchant_view

MAX_ACTIVE_KEYS = 2
AUTH_CACHE_TTL_S = 2.0
FIRST_PLATFORM_KEY_ID = "PK1"  # see platform_signer


@dataclass(frozen=True)
class PlatformSigner:
    key_id: str
    private_key: RSAPrivateKey
    public_key_pem: str


class MerchantService:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        ids: Snowflake,
        *,
        webhook_allowed_networks: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._allowed_networks = webhook_allowed_networks
        self._box = box
        self._ids = ids
        self._auth_cache: LoadOnce[str, AppAuth] = LoadOnce(AUTH_CACHE_TTL_S)
        self._platform: PlatformSigner | None = None
        self._tokens = AdminTokens(db)
        self.audit = AdminAuditLog(db, ids)
        self.users = PortalUsers(db, box, ids, clock or SystemClock())  # the merchant portal's people

    # --- merchants ----------------------------------------------------------------------------------

    async def create_merchant(self, cmd: MerchantCreate) -> MerchantView:
        now = utcnow()
        merchant = Merchant(
            mch_no=f"M{self._ids.next_int()}",
            name=cmd.name,
            status="ACTIVE",
            settle_cycle=DEFAULT_SETTLE_CYCLE,
            fee_plan_id=None,
            created_at=now,
            updated_at=now,
        )
        async with self._db.uow() as uow:
            uow.session.add(merchant)
            await uow.commit()
        return merchant_view(merchant, [])

    async def get_merchant(self, mch_no: str) -> MerchantView:
        async with self._db.uow() as uow:
            merchant = await repo.get_merchant(uow.session, mch_no)
            if merchant is None:
                raise MerchantNotFound(f"merchant {mch_no} not found")
            views = await self._views(uow.session, [merchant])
        return views[0]

    async def list_merchants(self, after: str | None, limit: int) -> list[MerchantView]:
        async with self._db.uow() as uow:
            merchants = await repo.list_merchants(uow.session, after, limit)
            return await self._views(uow.session, merchants)

    async def set_merchant_frozen(self, mch_no: str, frozen: bool) -> MerchantView:
        async with self._db.uow() as uow:
            if not await repo.set_merchant_status(uow.session, mch_no, "FROZEN" if frozen else "ACTIVE", utcnow()):
                raise MerchantNotFound(f"merchant {mch_no} not found")
            await uow.commit()
        self._auth_cache.clear()
        return await self.get_merchant(mch_no)

    async def set_settle_cycle(self, mch_no: str, cmd: SettleCycleUpdate) -> MerchantView:
        """The cycle applies from the next settlement run on, to every line not yet settled."""
        async with self._db.uow() as uow:
            if not await repo.set_settle_cycle(uow.session, mch_no, cmd.cycle, utcnow()):
                raise MerchantNotFound(f"merchant {mch_no} not found")
            await uow.commit()
        return await self.get_merchant(mch_no)

    async def settle_cycles(self, mch_nos: Sequence[str]) -> dict[str, str]:
        """Each merchant's settlement cycle (unknown merchants are left out)."""
        if not mch_nos:
            return {}
        async with self._db.uow() as uow:
            return await repo.settle_cycles(uow.session, mch_nos)

    # --- fee plans ----------------------------------------------------------------------------------

    async def create_fee_plan(self, cmd: FeePlanCreate) -> FeePlanView:
        plan = FeePlan(
            id=f"FP{self._ids.next_int()}",
            name=cmd.name,
            rates=json.dumps({m.value: ppm for m, ppm in sorted(cmd.rates.items())}),
            min_fee=cmd.min_fee,
            refund_fee=cmd.refund_fee,
            created_at=utcnow(),
        )
        async with self._db.uow() as uow:
            uow.session.add(plan)
            await uow.commit()
        return fee_plan_view(plan)

    async def get_fee_plan(self, plan_id: str) -> FeePlanView:
        async with self._db.uow() as uow:
            plan = await repo.get_fee_plan(uow.session, plan_id)
        if plan is None:
            raise FeePlanNotFound(f"fee plan {plan_id} not found")
        return fee_plan_view(plan)

    async def list_fee_plans(self, after: str | None, limit: int) -> list[FeePlanView]:
        async with self._db.uow() as uow:
            return [fee_plan_view(p) for p in await repo.list_fee_plans(uow.session, after, limit)]

    async def assign_fee_plan(self, mch_no: str, cmd: FeePlanAssign) -> MerchantView:
        """Puts the merchant on the plan from its next payment on (paid orders keep their snapshot)."""
        async with self._db.uow() as uow:
            if await repo.get_merchant(uow.session, mch_no) is None:
                raise MerchantNotFound(f"merchant {mch_no} not found")
            if cmd.fee_plan_id is not None and await repo.get_fee_plan(uow.session, cmd.fee_plan_id) is None:
                raise FeePlanNotFound(f"fee plan {cmd.fee_plan_id} not found")
            await repo.set_fee_plan(uow.session, mch_no, cmd.fee_plan_id, utcnow())
            await uow.commit()
        return await self.get_merchant(mch_no)

    @staticmethod
    async def fee_terms(session: AsyncSession, mch_no: str) -> FeeTerms | None:
        """The merchant's plan, read in the caller's unit of work (the payment snapshot); None: no plan."""
        plan = await repo.fee_plan_of_merchant(session, mch_no)
        if plan is None:
            return None
        return FeeTerms(
            fee_plan_id=plan.id, rates=json.loads(plan.rates), min_fee=plan.min_fee, refund_fee=plan.refund_fee
        )

    # --- apps ---------------------------------------------------------------------------------------

    async def create_app(self, mch_no: str, cmd: AppCreate) -> AppCreated:
        if cmd.notify_url is not None:
            check_literal(cmd.notify_url, self._allowed_networks)
        if cmd.sign_type == "RSA-SHA256" and not cmd.public_key_pem:
            raise InvalidRequest.field("public_key_pem", "required for RSA-SHA256 apps")
        if cmd.sign_type == "HMAC-SHA256" and cmd.public_key_pem:
            raise InvalidRequest.field("public_key_pem", "only for RSA-SHA256 apps")
        now = utcnow()
        app = App(
            app_id=f"A{self._ids.next_int()}",
            mch_no=mch_no,
            name=cmd.name,
            status="ACTIVE",
            sign_type=cmd.sign_type,
            notify_url=cmd.notify_url,
            pay_methods=json.dumps(sorted({m.value for m in cmd.pay_methods})),
            amount_limit=cmd.amount_limit,
            created_at=now,
            updated_at=now,
        )
        async with self._db.uow() as uow:
            if await repo.get_merchant(uow.session, mch_no) is None:
                raise MerchantNotFound(f"merchant {mch_no} not found")
            uow.session.add(app)
            key, secret = self._new_key(app, cmd.public_key_pem)
            uow.session.add(key)
            await uow.commit()
        return AppCreated(app=app_view(app, "ACTIVE", [key]), key_id=key.key_id, secret=secret)

    async def get_app(self, app_id: str) -> AppView:
        async with self._db.uow() as uow:
            app = await repo.get_app(uow.session, app_id)
            if app is None:
                raise AppNotFound(f"app {app_id} not found")
            merchant = await repo.get_merchant(uow.session, app.mch_no)
            keys = await repo.active_keys(uow.session, [app_id])
        return app_view(app, merchant.status if merchant else "FROZEN", list(keys))

    async def update_app(self, app_id: str, cmd: AppUpdate) -> AppView:
        if cmd.notify_url is not None:
            check_literal(cmd.notify_url, self._allowed_networks)
        async with self._db.uow() as uow:
            app = await repo.get_app(uow.session, app_id)
            if app is None:
                raise AppNotFound(f"app {app_id} not found")
            for name in cmd.model_fields_set:
                value = getattr(cmd, name)
                if name == "pay_methods":
                    value = json.dumps(sorted({m.value for m in value or []}))
                setattr(app, name, value)
            app.updated_at = utcnow()
            await uow.commit()
        self._auth_cache.drop(app_id)
        return await self.get_app(app_id)

    async def set_app_frozen(self, app_id: str, frozen: bool) -> AppView:
        async with self._db.uow() as uow:
            if not await repo.set_app_status(uow.session, app_id, "FROZEN" if frozen else "ACTIVE", utcnow()):
                raise AppNotFound(f"app {app_id} not found")
            await uow.commit()
        self._auth_cache.drop(app_id)
        return await self.get_app(app_id)

    async def rotate_key(self, app_id: str, cmd: KeyRotate) -> AppCreated:
        """Adds a second active key; the old one stays valid until `remove_key`."""
        async with self._db.uow() as uow:
            app = await repo.get_app(uow.session, app_id)
            if app is None:
                raise AppNotFound(f"app {app_id} not found")
            if app.sign_type == "RSA-SHA256" and not cmd.public_key_pem:
                raise InvalidRequest.field("public_key_pem", "required for RSA-SHA256 apps")
            if app.sign_type == "HMAC-SHA256" and cmd.public_key_pem:
                raise InvalidRequest.field("public_key_pem", "only for RSA-SHA256 apps")
            if await repo.count_active_keys(uow.session, app_id) >= MAX_ACTIVE_KEYS:
                raise TooManyKeys(f"app {app_id} already has {MAX_ACTIVE_KEYS} active keys; remove one first")
            key, secret = self._new_key(app, cmd.public_key_pem)
            uow.session.add(key)
            await uow.commit()
        self._auth_cache.drop(app_id)
        return AppCreated(app=await self.get_app(app_id), key_id=key.key_id, secret=secret)

    async def remove_key(self, app_id: str, key_id: str) -> AppView:
        async with self._db.uow() as uow:
            if await repo.get_app(uow.session, app_id) is None:
                raise AppNotFound(f"app {app_id} not found")
            if await repo.count_active_keys(uow.session, app_id) <= 1:
                raise LastKey("an app keeps at least one active key")
            if not await repo.revoke_key(uow.session, app_id, key_id):
                raise KeyNotFound(f"active key {key_id} not found")
            await uow.commit()
        self._auth_cache.drop(app_id)
        return await self.get_app(app_id)

    def _new_key(self, app: App, public_key: str | None) -> tuple[AppKey, str | None]:
        key_id = f"K{self._ids.next_int()}"
        if app.sign_type == "RSA-SHA256":
            assert public_key is not None
            pem = public_key_pem(load_public_key(public_key))
            return AppKey(
                key_id=key_id, app_id=app.app_id, public_key_pem=pem, status="ACTIVE", created_at=utcnow()
            ), None
        secret = random_token(32)
        ciphertext = self._box.encrypt(secret, context=f"app-key:{key_id}")
        return AppKey(
            key_id=key_id, app_id=app.app_id, secret_ciphertext=ciphertext, status="ACTIVE", created_at=utcnow()
        ), secret

    # --- what the gateway asks ------------------------------------------------------------------------

    async def app_auth(self, app_id: str, *, fresh: bool = False) -> AppAuth:
        """Credentials and status of an app, cached for a moment (freezing and rotation clear this process's cache;
        `fresh` reads the database anyway, for callers in other processes that keep their own cache).
        `hmac_secrets` are newest first. Concurrent misses share one read (core.loadonce)."""

        async def load() -> AppAuth:
            async with self._db.uow() as uow:
                app = await repo.get_app(uow.session, app_id)
                if app is None:
                    raise UnknownApp(f"unknown app {app_id}")
                merchant = await repo.get_merchant(uow.session, app.mch_no)
                keys = await repo.active_keys(uow.session, [app_id])
            return AppAuth(
                app_id=app.app_id,
                mch_no=app.mch_no,
                sign_type=app.sign_type,
                app_status=app.status,
                merchant_status=merchant.status if merchant else "FROZEN",
                hmac_secrets=tuple(
                    self._box.decrypt(k.secret_ciphertext, context=f"app-key:{k.key_id}").encode()
                    for k in keys
                    if k.secret_ciphertext
                ),
                rsa_public_keys=tuple(load_public_key(k.public_key_pem) for k in keys if k.public_key_pem),
                pay_methods=frozenset(json.loads(app.pay_methods)),
                amount_limit=app.amount_limit,
                notify_url=app.notify_url,
            )

        return await self._auth_cache.get(app_id, load, fresh=fresh)

    @staticmethod
    def ensure_usable(auth: AppAuth, pay_method: str | None = None) -> None:
        """Raises the 403 that applies: frozen merchant, disabled app, pay method not enabled."""
        if auth.merchant_status != "ACTIVE":
            raise MerchantFrozen(f"merchant {auth.mch_no} is frozen")
        if auth.app_status != "ACTIVE":
            raise AppDisabled(f"app {auth.app_id} is disabled")
        if pay_method is not None and pay_method not in auth.pay_methods:
            raise PayMethodNotEnabled(f"pay_method {pay_method} is not enabled for this app")

    # --- admin tokens and the audit trail (merchant.tokens, merchant.audit) ---------------------------------

    async def create_admin_token(self, role: str, name: str = "", token: str | None = None) -> str:
        """Stores only the hash; the plaintext is returned once. `token` lets settings bootstrap a known one."""
        return (await self._tokens.create(role, name, token)).token

    async def issue_admin_token(self, role: str, name: str) -> AdminTokenCreated:
        """A new random token with its view; the plaintext is in this answer only."""
        return await self._tokens.create(role, name)

    async def list_admin_tokens(self, after: str | None = None, limit: int = 1000) -> list[AdminTokenView]:
        """Oldest first; `after` is the last token id seen."""
        return await self._tokens.page(after, limit)

    async def get_admin_token(self, token_id: str) -> AdminTokenView:
        return await self._tokens.get(token_id)

    async def revoke_admin_token(self, token_id: str) -> AdminTokenView:
        """Refused from the token's very next request on (nothing caches a token's answer)."""
        return await self._tokens.revoke(token_id)

    async def admin_identity(self, token: str) -> AdminIdentity | None:
        return await self._tokens.identity(token)

    async def admin_role(self, token: str) -> str | None:
        who = await self._tokens.identity(token)
        return None if who is None else who.role

    async def admin_name(self, token: str) -> str | None:
        """The name of an active admin token (what audit trails record as the actor), None when unknown."""
        who = await self._tokens.identity(token)
        return None if who is None else who.actor

    async def record_admin_action(
        self,
        *,
        via: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | BaseModel | None,
        after: Mapping[str, Any] | BaseModel | None,
        request_id: str | None = None,
        actor_token: str | None = None,
        actor: str = "unknown",
        actor_id: str | None = None,
        mch_no: str | None = None,
    ) -> AuditEntryView:
        """One audit row for an action that succeeded. `actor_token` (the bearer token used) is resolved to its id
        and role:name, revoked or not; without one (the CLI) `actor` names who acted."""
        who = None if actor_token is None else await self._tokens.identity(actor_token, include_revoked=True)
        return await self.audit.record(
            who=who,
            actor=actor,
            via=via,
            action=action,
            target=target,
            before=before,
            after=after,
            request_id=request_id,
            scrub=actor_token,
            actor_id=actor_id,
            mch_no=mch_no,
        )

    async def list_admin_audit(self, f: AuditFilter, before_id: int | None, limit: int) -> list[AuditEntryView]:
        """Newest first; `before_id` is the number of the last record seen."""
        return await self.audit.page(f, before_id, limit)

    # --- the platform's RSA key -------------------------------------------------------------------------

    async def platform_signer(self) -> PlatformSigner:
        """The platform's signing key, created by the first process that needs it. The first key has the fixed id
        FIRST_PLATFORM_KEY_ID, so two processes creating it at once collide on the primary key: the loser reads the
        winner's, and every process signs with the same key."""
        if self._platform is not None:
            return self._platform
        async with self._db.uow() as uow:
            row = await repo.latest_platform_key(uow.session)
        if row is None:
            key = generate_rsa_key()
            row = PlatformKey(
                key_id=FIRST_PLATFORM_KEY_ID,
                public_key_pem=public_key_pem(key),
                private_key_ciphertext=self._box.encrypt(
                    private_key_pem(key), context=f"platform-key:{FIRST_PLATFORM_KEY_ID}"
                ),
                created_at=utcnow(),
            )
            try:
                async with self._db.uow() as uow:
                    uow.session.add(row)
                    await uow.commit()
            except IntegrityError:
                async with self._db.uow() as uow:
                    row = await repo.latest_platform_key(uow.session)
                if row is None:
                    raise
        pem = self._box.decrypt(row.private_key_ciphertext, context=f"platform-key:{row.key_id}")
        self._platform = PlatformSigner(row.key_id, load_private_key(pem), row.public_key_pem)
        return self._platform

    async def _views(self, s: AsyncSession, merchants: Sequence[Merchant]) -> list[MerchantView]:
        apps = await repo.apps_of(s, [m.mch_no for m in merchants])
        keys = await repo.active_keys(s, [a.app_id for a in apps])
        by_app: dict[str, list[AppKey]] = {}
        for k in keys:
            by_app.setdefault(k.app_id, []).append(k)
        status = {m.mch_no: m.status for m in merchants}
        apps_by_mch: dict[str, list[AppView]] = {}
        for a in apps:
            apps_by_mch.setdefault(a.mch_no, []).append(app_view(a, status[a.mch_no], by_app.get(a.app_id, [])))
        return [merchant_view(m, apps_by_mch.get(m.mch_no, [])) for m in merchants]
