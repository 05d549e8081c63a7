"""Raw channel statements, content-addressed, kept for audit; `fetch_statement` downloads, verifies and stores.

Files live on disk under `TOMATO_STATEMENT_DIR` (default `<TOMATO_DATA_DIR>/statements`) as `ab/<sha256>` where
`ab` is the hash's first two hex digits; they are written once (temporary file, fsync, atomic rename) and never
changed. A `statement_files` row per (channel account, business date, sha256) says which file a date had and when it
was fetched. Several hosts fetching or reading statements must share that directory (a shared volume).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from tomato.channel.protocol import ChannelAdapter, SubMerchant
from tomato.core.clock import Clock, as_utc
from tomato.core.db import Database
from tomato.core.settings import Settings
from tomato.reconciliation.combine import combined_statement
from tomato.reconciliation.models import StatementFile
from tomato.reconciliation.statement import Parsed, Statement, parse_statement


class AdapterSource(Protocol):
    """What `fetch_statement` needs of the channel context (`ChannelService` is one)."""

    async def adapter(self, account_id: str) -> ChannelAdapter: ...

    async def statement_subs(self, account_id: str) -> list[SubMerchant]:
        """The sub-merchants whose bills make a service-provider account's statement; [] for a direct account."""
        ...


@dataclass(frozen=True)
class StoredStatement:
    channel: str
    channel_account_id: str
    business_date: date
    sha256: str
    size: int
    fetched_at: datetime
    path: Path

    def open(self) -> BinaryIO:
        """The raw file as downloaded (Alipay: the bill zip; WeChat: the checked bill text; bank: the file zip)."""
        return self.path.open("rb")

    def statement(self) -> Statement:
        """The file as a `Statement`: its lines, or its staging rows for the loader, each read as a stream."""
        return Statement(self.channel, self.open)

    @contextmanager
    def lines(self) -> Iterator[Parsed]:
        """`with stored.lines() as lines: for line in lines: …` — parsed as a stream, the file closed afterwards."""
        with self.open() as stream:
            yield parse_statement(self.channel, stream)


def statement_dir(settings: Settings) -> Path:
    return Path(settings.statement_dir) if settings.statement_dir else Path(settings.data_dir) / "statements"


class StatementStore:
    def __init__(self, db: Database, root: Path, clock: Clock) -> None:
        self._db = db
        self._root = root
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, clock: Clock) -> StatementStore:
        return cls(db, statement_dir(settings), clock)

    def path_of(self, sha256: str) -> Path:
        return self._root / sha256[:2] / sha256

    def _write(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        if path.is_file() and path.stat().st_size == len(data):
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    async def put(self, channel: str, account_id: str, day: date, data: bytes) -> StoredStatement:
        """Keep `data` as the statement of (account, day): the file first, then its row (no I/O inside the uow)."""
        digest = await asyncio.to_thread(self._write, data)
        now = self._clock.now()
        key = (StatementFile.channel_account_id == account_id) & (StatementFile.business_date == day.isoformat())
        try:
            async with self._db.uow() as uow:
                uow.session.add(
                    StatementFile(
                        channel_account_id=account_id, business_date=day.isoformat(), sha256=digest,
                        channel=channel, size=len(data), fetched_at=now,
                    )
                )  # fmt: skip
                await uow.commit()
        except IntegrityError:  # fetched before with the same content: only the time moves
            async with self._db.uow() as uow:
                await uow.session.execute(
                    update(StatementFile).where(key & (StatementFile.sha256 == digest)).values(fetched_at=now)
                )
                await uow.commit()
        return StoredStatement(channel, account_id, day, digest, len(data), now, self.path_of(digest))

    async def latest(self, account_id: str, day: date) -> StoredStatement | None:
        """The statement of (account, day) fetched last, or None."""
        async with self._db.uow() as uow:
            row = (
                await uow.session.execute(
                    select(StatementFile)
                    .where(StatementFile.channel_account_id == account_id)
                    .where(StatementFile.business_date == day.isoformat())
                    .order_by(StatementFile.fetched_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if row is None:
            return None
        return StoredStatement(
            row.channel, account_id, day, row.sha256, row.size, as_utc(row.fetched_at), self.path_of(row.sha256)
        )

    async def fetch(self, channels: AdapterSource, account_id: str, day: date) -> StoredStatement:
        """`fetch_statement` into this store."""
        return await fetch_statement(channels, account_id, day, store=self)

    def verify(self, stored: StoredStatement) -> bool:
        """True when the file on disk still has its sha256 (read in chunks)."""
        digest = hashlib.sha256()
        try:
            with stored.open() as stream:
                for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == stored.sha256


async def fetch_statement(
    channels: AdapterSource, account_id: str, day: date, *, store: StatementStore
) -> StoredStatement:
    """Download (account, day)'s statement through the account's adapter and keep it.

    The adapter verifies what its channel lets it verify (WeChat: the bill's SHA1) and raises
    `StatementUnavailable` (a `ChannelError`) when the statement cannot be had; nothing is stored then. A
    service-provider account's statement is every sub-merchant's bill in one file (`combine.py`).
    """
    adapter = await channels.adapter(account_id)
    subs = await channels.statement_subs(account_id)
    data = await combined_statement(adapter, day, subs) if subs else await adapter.download_statement(day)
    return await store.put(adapter.channel, account_id, day, data)
