"""Alembic migrations, shipped inside the package so `tomato db upgrade` works from an installed wheel.

This package sits above every context (it must see all tables); nothing imports it but the CLI,
bootstrap and tests.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

from tomato.core.db import Base

MIGRATIONS_DIR = Path(__file__).parent
MODEL_MODULES = (
    "tomato.core.ids",
    "tomato.core.outbox",
    "tomato.core.leases",
    "tomato.merchant.models",
    "tomato.merchant.user_models",
    "tomato.channel.models",
    "tomato.pay.models",
    "tomato.pay.split_models",
    "tomato.notice.models",
    "tomato.account.models",
    "tomato.reconciliation.models",
    "tomato.account.payouts.models",
)


def metadata() -> MetaData:
    """Every context's tables on the one shared metadata."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url)
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Synchronous on purpose: Alembic drives its own event loop through env.py; call it off the loop."""
    command.upgrade(alembic_config(database_url), revision)
