"""Settings: environment over TOML over defaults, and the README documents every one of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tomato.core.settings import Settings, load_settings
from tomato.runtime.preflight import StartupRefused, check_startup, startup_problems

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TOMATO_"):
            monkeypatch.delenv(name)
    s = load_settings()
    assert s.is_sqlite and s.redis_url is None and s.amqp_url is None


def test_toml_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "tomato.toml"
    config.write_text('[tomato]\nrate_limit_rps = 7\nredis_url = "redis://file:6379/0"\n')
    monkeypatch.setenv("TOMATO_CONFIG_FILE", str(config))
    monkeypatch.setenv("TOMATO_REDIS_URL", "redis://env:6379/0")
    s = load_settings()
    assert s.rate_limit_rps == 7 and s.redis_url == "redis://env:6379/0"
    monkeypatch.setenv("TOMATO_REDIS_URL", "")
    assert load_settings().redis_url is None  # an empty variable means "not configured"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOMATO_RATE_LIMIT_RPS", "0")
    with pytest.raises(ValueError):
        load_settings()


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [f"TOMATO_{name.upper()}" for name in Settings.model_fields if f"`TOMATO_{name.upper()}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/tomato"
KEYS = "k1:" + "A" * 43 + "="


@pytest.mark.parametrize(
    ("values", "serves_api", "workers", "needs"),
    [
        ({}, True, 1, []),  # the embedded default: nothing to configure
        ({}, True, 2, ["TOMATO_REDIS_URL"]),  # per-worker nonces would let a replay through another worker
        ({"redis_url": "redis://r:6379/0"}, True, 4, []),
        ({"database_url": PG, "secret_keys": KEYS}, True, 1, ["TOMATO_REDIS_URL"]),
        ({"database_url": PG, "redis_url": "redis://r:6379/0"}, True, 1, ["TOMATO_SECRET_KEYS"]),
        ({"database_url": PG}, True, 2, ["TOMATO_REDIS_URL", "TOMATO_SECRET_KEYS"]),
        ({"database_url": PG, "redis_url": "redis://r:6379/0", "secret_keys": KEYS}, True, 8, []),
        ({"database_url": PG, "secret_keys": KEYS}, False, 1, []),  # worker/scheduler serve no merchant API
        ({"database_url": PG}, False, 1, ["TOMATO_SECRET_KEYS"]),  # every role decrypts app secrets
    ],
)
def test_startup_refuses_unsafe_combinations(
    values: dict[str, str], serves_api: bool, workers: int, needs: list[str]
) -> None:
    base = {"redis_url": None, "secret_keys": None, "database_url": "sqlite+aiosqlite:///x.db"}
    settings = Settings(**{**base, **values})
    problems = startup_problems(settings, serves_api=serves_api, workers=workers)
    assert [next(n for n in ("TOMATO_REDIS_URL", "TOMATO_SECRET_KEYS") if n in p) for p in problems] == needs
    if needs:
        with pytest.raises(StartupRefused, match="|".join(needs)):
            check_startup(settings, serves_api=serves_api, workers=workers)
    else:
        check_startup(settings, serves_api=serves_api, workers=workers)
