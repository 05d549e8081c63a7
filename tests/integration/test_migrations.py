"""The schema comes from the migrations, and the migrations match the models (no drift), on both databases."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from tomato.migrations import alembic_config


def test_models_and_migrations_agree(db_url: str) -> None:
    command.check(alembic_config(db_url))  # raises when autogenerate would write anything


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}; merge them"
