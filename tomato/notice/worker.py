"""The delivery worker: claim → sign and POST (no transaction open) → record → schedule the next wake-up → ack.

* Claim is a compare-and-set (due, PENDING, lease free) that sets a lease and a fencing token, batched across
  concurrent messages; a duplicate or stale message finds nothing to claim and is simply acked.
* The attempt is appended to the log whatever happens; the delivery row moves on only if it still holds the
  token (a worker that outlived its lease cannot overwrite a newer attempt's result).
* A failed attempt sets `next_attempt_at` = end of the attempt + the schedule's delay, commits, then publishes
  the delayed wake-up; if that publish is lost, the sweeper re-enqueues from the row. After the last scheduled
  attempt the delivery is FAILED.
* A worker killed mid-POST holds no message ack and no committed result: the broker redelivers (the lease makes
  that a no-op) and the sweeper re-enqueues once the lease ran out — same delivery, same event id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tomato.core.alerts import WEBHOOK_DELIVERY_FAILED, alert
from tomato.core.clock import as_utc, utcnow
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.core.rawpg import raw_connection
from tomato.merchant.schemas import AppAuth
from tomato.merchant.service import MerchantService, PlatformSigner
from tomato.merchant.signing import sign_webhook
from tomato.notice import repository as repo
from tomato.notice.batching import Batcher
from tomato.notice.lag import LagGauge
from tomato.notice.queues import DeliveryQueue
from tomato.notice.schedule import NoticeConfig
from tomato.notice.sender import Outcome, WebhookSender, new_nonce, webhook_headers

log = logging.getLogger(__name__)

# Wake-ups are scheduled this much before the due time and may claim that early; the worker then waits until
# exactly due, so the claim transaction does not delay the attempt (and the attempt never starts early).
WAKE_EARLY_S = 0.05
# A wake-up that finds its delivery not due yet waits in place if that is this close (clock skew between hosts);
# anything later is a stray copy (a resend or sweep overtook it) and is dropped: the row and the sweeper decide.
NOT_DUE_WAIT_MAX_S = 2.0
# How long the worker signs with an app's keys before reading them again: under the 5 s within which a key added or
# removed must reach webhook signing, leaving room for the wait between fetching the keys and sending.
KEY_CACHE_TTL_S = 4.0


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    event_id: str
    app_id: str
    url: str
    attempt_no: int  # 1-based, across rounds
    in_round: int  # 1-based position in the current schedule round
    token: str
    body: bytes
    due: datetime


@dataclass(frozen=True)
class NotDue:
    wait_s: float


@dataclass(frozen=True)
class _Result:
    claim: Claim
    outcome: Outcome


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        ids: Snowflake,
        merchants: MerchantService,
        queue: DeliveryQueue,
        sender: WebhookSender,
        config: NoticeConfig,
        rng: random.Random | None = None,
    ) -> None:
        self._db, self._ids, self._merchants, self._queue, self._sender = db, ids, merchants, queue, sender
        self._config = config
        self._rng = rng or random.Random()
        self._claims: Batcher[str, Claim | NotDue | None] = Batcher(
            self._claim, name="notice-claim", max_size=config.batch_size
        )
        self._records: Batcher[_Result, datetime | None] = Batcher(
            self._record, name="notice-record", max_size=config.batch_size
        )
        self.attempted = 0
        self.lag = LagGauge()  # how late wake-ups are claimed: the sweeper's measure of a backlog
        self._apps = AppKeyCache(merchants)
        self._free = config.concurrency  # slots for first attempts handed over by this process's consumer
        self._local: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._claims.start()
        self._records.start()

    async def close(self) -> None:
        """Lets handed-over attempts finish (bounded by the HTTP timeout), then stops the batchers."""
        if self._local:  # bounded: what is cut short keeps its lease and is retried after it (same event id)
            await asyncio.wait(set(self._local), timeout=min(3.0, self._config.http_timeout_s))
        for task in self._local:
            task.cancel()
        await asyncio.gather(*self._local, return_exceptions=True)
        await self._claims.close()
        await self._records.close()

    # --- first attempts handed over in-process (no queue round trip) ------------------------------------------

    def reserve(self, wanted: int) -> int:
        """Up to `wanted` local slots; the consumer inserts that many deliveries already claimed for us."""
        granted = max(0, min(wanted, self._free))
        self._free -= granted
        return granted

    def release(self, n: int) -> None:
        self._free += n

    def dispatch(self, claims: Sequence[Claim]) -> None:
        """Attempts deliveries the consumer inserted already claimed (one reserved slot each)."""
        for claim in claims:
            task = asyncio.create_task(self._attempt_local(claim), name=f"notice:{claim.delivery_id}")
            self._local.add(task)
            task.add_done_callback(self._local.discard)

    async def _attempt_local(self, claim: Claim) -> None:
        try:
            await self._attempt(claim)
        except Exception:  # the lease runs out and the sweeper takes it from there
            log.warning("first attempt of %s failed on our side", claim.delivery_id, exc_info=True)
        finally:
            self._free += 1

    # --- wake-ups from the queue ----------------------------------------------------------------------------

    async def handle(self, delivery_id: str) -> None:
        """Queue handler for one wake-up; returns when there is nothing more to do for this message."""
        claimed = await self._claims.submit(delivery_id)
        if isinstance(claimed, NotDue):
            if claimed.wait_s > NOT_DUE_WAIT_MAX_S:
                log.debug("dropping early wake-up of %s (due in %.1fs)", delivery_id, claimed.wait_s)
                return
            await asyncio.sleep(max(0.0, claimed.wait_s - WAKE_EARLY_S))
            claimed = await self._claims.submit(delivery_id)
        if isinstance(claimed, Claim):
            await self._attempt(claimed)

    async def _attempt(self, claim: Claim) -> None:
        signing = await self._signing_keys(claim)  # before the wait: a cache miss must not delay the attempt
        wait_s = (claim.due - utcnow()).total_seconds()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        outcome = await self._send(claim, signing)
        self.attempted += 1
        due = await self._records.submit(_Result(claim, outcome))
        if due is not None:
            delay = max(0.0, (due - utcnow()).total_seconds() - WAKE_EARLY_S)  # measured after the commit
            try:
                await self._queue.enqueue_later(claim.delivery_id, delay)
            except Exception:
                log.warning("could not schedule %s in %.1fs; the sweeper will", claim.delivery_id, delay, exc_info=True)

    async def _signing_keys(self, claim: Claim) -> tuple[AppAuth, PlatformSigner | None] | Exception:
        try:
            app = await self._apps.get(claim.app_id)
            platform = await self._merchants.platform_signer() if app.sign_type == "RSA-SHA256" else None
        except Exception as exc:  # the app vanished: an attempt that fails on our side, logged like any other
            log.error("cannot sign %s for app %s: %r", claim.event_id, claim.app_id, exc)
            return exc
        return app, platform

    async def _send(self, claim: Claim, signing: tuple[AppAuth, PlatformSigner | None] | Exception) -> Outcome:
        if isinstance(signing, Exception):
            return Outcome(utcnow(), 0, None, None, type(signing).__name__, str(signing)[:256])
        if not claim.body:  # never POST an empty body: the outbox row is gone
            return Outcome(utcnow(), 0, None, None, "EventMissing", f"event {claim.event_id} not in the outbox")
        timestamp, nonce = str(int(utcnow().timestamp())), new_nonce()
        signature = sign_webhook(signing[0], signing[1], timestamp, nonce, claim.body)
        headers = webhook_headers(claim.event_id, timestamp, nonce, signature)
        return await self._sender.post(claim.url, claim.body, headers)

    # --- batched database work -------------------------------------------------------------------------------

    async def _claim(self, ids: Sequence[str]) -> list[Claim | NotDue | None]:
        unique = list(dict.fromkeys(ids))
        now = utcnow()
        token = uuid.uuid4().hex
        due_by, lease_until = now + timedelta(seconds=WAKE_EARLY_S), now + timedelta(seconds=self._config.lease_s)
        rows: Sequence[Any]
        others: Sequence[Any]
        if self._db.dialect == "postgresql":  # no ORM session: the raw connection, BEGIN + SET LOCAL in one trip
            async with raw_connection(self._db.engine, "claiming webhook deliveries") as raw:
                rows, others = await repo.claim_pg(raw, unique, now, due_by, lease_until, token)
            bodies = {r.event_id: r.payload or "" for r in rows}
        else:
            async with self._db.uow() as uow:
                await repo.plan_for_current_sizes(uow.session)
                rows = await repo.claim(uow.session, unique, now, due_by, lease_until, token)
                bodies = await repo.payloads(uow.session, [r.event_id for r in rows]) if rows else {}
                claimed = {r.id for r in rows}
                missing = [i for i in unique if i not in claimed]
                others = await repo.states(uow.session, missing) if missing else []
                await uow.commit()
        result: dict[str, Claim | NotDue | None] = {}
        for r in rows:
            self.lag.observe((now - as_utc(r.next_attempt_at)).total_seconds())
            result[r.id] = Claim(
                r.id, r.event_id, r.app_id, r.url, r.attempts + 1, r.attempts - r.round_start + 1, token,
                bodies.get(r.event_id, "").encode(), as_utc(r.next_attempt_at),
            )  # fmt: skip
        for o in others:
            leased = o.lease_until is not None and as_utc(o.lease_until) >= now
            if o.status == repo.PENDING and not leased and o.next_attempt_at is not None:
                result[o.id] = NotDue(max(0.0, (as_utc(o.next_attempt_at) - now).total_seconds()))
        out: list[Claim | NotDue | None] = []
        for delivery_id in ids:  # a duplicate id in one batch gets its claim once
            out.append(result.pop(delivery_id, None))
        return out

    async def _record(self, results: Sequence[_Result]) -> list[datetime | None]:
        """Commits the attempts; returns each delivery's next due time (None: nothing more to schedule)."""
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        dues: list[datetime | None] = []
        now = utcnow()
        for res in results:
            c, o = res.claim, res.outcome
            attempts.append(
                {
                    "id": self._ids.next_int(), "delivery_id": c.delivery_id, "attempt_no": c.attempt_no,
                    "started_at": o.started_at, "latency_ms": o.latency_ms, "http_status": o.http_status,
                    "response_body": o.response_body, "error_class": o.error_class,
                    "error_message": o.error_message, "succeeded": o.succeeded,
                }
            )  # fmt: skip
            finished = o.started_at + timedelta(milliseconds=o.latency_ms)
            delay = None if o.succeeded else self._config.schedule.delay_after(c.in_round, self._rng)
            status = repo.SUCCEEDED if o.succeeded else (repo.PENDING if delay is not None else repo.FAILED)
            due = _after(finished, delay)
            dues.append(due)
            updates.append(
                {
                    "b_id": c.delivery_id, "b_token": c.token, "status": status, "attempts": c.attempt_no,
                    "next_attempt_at": due, "last_status": o.http_status,
                    "last_error": o.error_class, "finished_at": None if status == repo.PENDING else now,
                    "updated_at": now,
                }
            )  # fmt: skip
        if self._db.dialect == "postgresql":  # one statement, no BEGIN/COMMIT round trips
            async with raw_connection(self._db.engine, "recording webhook attempts") as raw:
                await repo.record_pg(raw, attempts, updates)
        else:
            async with self._db.uow() as uow:
                await repo.record(uow.session, attempts, updates)
                await uow.commit()
        for res, update in zip(results, updates, strict=True):
            if update["status"] == repo.FAILED:
                _alert_failed(res.claim, res.outcome)
        return dues


class AppKeyCache:
    """The signing keys of each app for a few seconds, fetched once however many attempts want them at once
    (the merchant service's own cache would let every concurrent attempt query the database on expiry).

    A key added or removed must reach webhook signing within 5 s: entries are loaded fresh from the database
    (never through the merchant service's cache, whose age would add to ours) and live `ttl_s` from the moment
    the load started, so what an attempt signs with is never older than that."""

    def __init__(
        self,
        merchants: MerchantService,
        ttl_s: float = KEY_CACHE_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._merchants = merchants
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._cached: dict[str, tuple[float, AppAuth]] = {}
        self._loading: dict[str, asyncio.Future[AppAuth]] = {}

    async def get(self, app_id: str) -> AppAuth:
        hit = self._cached.get(app_id)
        if hit is not None and hit[0] > self._monotonic():
            return hit[1]
        loading = self._loading.get(app_id)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[AppAuth] = asyncio.get_running_loop().create_future()
        self._loading[app_id] = future
        started = self._monotonic()
        try:
            app = await self._merchants.app_auth(app_id, fresh=True)
        except BaseException as exc:  # waiters must never be left hanging, cancellation included
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # marked retrieved: the waiters re-raise it
            else:
                future.cancel()
            raise
        finally:
            self._loading.pop(app_id, None)
        self._cached[app_id] = (started + self._ttl_s, app)
        future.set_result(app)
        return app


def _alert_failed(c: Claim, o: Outcome) -> None:
    """The delivery was given up after its last scheduled attempt: the merchant missed an event."""
    try:
        host = urlsplit(c.url).hostname or ""
    except ValueError:
        host = ""
    alert(
        log, WEBHOOK_DELIVERY_FAILED,
        f"webhook delivery {c.delivery_id} of event {c.event_id} FAILED after {c.attempt_no} attempts",
        delivery_id=c.delivery_id, event_id=c.event_id, app_id=c.app_id, url_host=host, attempts=c.attempt_no,
        last_status=o.http_status, last_error=o.error_class,
    )  # fmt: skip


def _after(at: datetime, delay_s: float | None) -> datetime | None:
    return None if delay_s is None else at + timedelta(seconds=delay_s)
