"""Process settings: `TOMATO_*` environment variables over an optional TOML file over defaults.

Nothing here touches the network or the disk at import time; `load_settings()` is called by `bootstrap()`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the platform reads. Empty optional URLs select the embedded backends."""

    model_config = SettingsConfigDict(env_prefix="TOMATO_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./tomato.db",
        description="SQLAlchemy async URL; postgresql+asyncpg://… in production, a SQLite file by default",
    )
    redis_url: str | None = Field(default=None, description="redis://… for cache, nonces, rate limits, breakers")
    amqp_url: str | None = Field(default=None, description="amqp://… for the event bus and work queues")
    amqp_prefix: str = Field(default="tomato", description="prefix of every RabbitMQ exchange and queue name")
    redis_prefix: str = Field(default="tomato:", description="prefix of every Redis key")
    data_dir: str = Field(default=".tomato", description="where embedded mode keeps its generated key file")
    secret_keys: str | None = Field(
        default=None,
        description="secret-box key ring 'kid:base64(32 bytes),…'; the first key encrypts; generated when empty",
    )
    admin_tokens: str | None = Field(
        default=None, description="bootstrap admin tokens 'role:token,…' (roles operator, finance)"
    )
    public_url: str = Field(default="http://127.0.0.1:8000", description="base URL at which channels reach us")
    rate_limit_rps: int = Field(default=100, ge=1, description="per-app sustained request rate")
    rate_limit_burst: int = Field(default=200, ge=1, description="per-app burst size")
    timestamp_window_s: int = Field(default=300, ge=1, description="allowed request clock skew")
    nonce_ttl_s: int = Field(default=900, ge=1, description="how long a request nonce is remembered")
    idempotency_ttl_s: int = Field(default=86400, ge=1, description="how long Idempotency-Key responses live")
    breaker_fail_max: int = Field(default=5, ge=1, description="consecutive failures that open a breaker")
    breaker_reset_timeout_s: float = Field(default=30.0, gt=0, description="open time before one probe")
    alert_breaker_open_s: float = Field(
        default=300.0, gt=0, description="a breaker open this long logs an ERROR (once per open period)"
    )
    channel_timeout_s: float = Field(default=10.0, gt=0, description="timeout of every channel HTTP call")
    compensation_time_scale: float = Field(default=1.0, gt=0, description="divides compensation delays")
    sandbox_time_scale: float = Field(default=1.0, gt=0, description="divides the simulator's notify retries")
    sandbox_fee_ppm: int = Field(
        default=3800, ge=0, le=1_000_000, description="fee every simulated channel charges, parts per million"
    )
    cashier_sandbox_hints: bool = Field(
        default=False,
        description="the cashier page shows the simulator's helper fields (openid entry, JSAPI parameters, "
        "/sandbox/scan hints); `tomato dev` turns it on, production leaves it off",
    )
    statement_dir: str = Field(
        default="",
        description="where raw channel statements are kept (content-addressed); empty: <data_dir>/statements. "
        "Every host that fetches or reads statements must see the same directory (a shared volume)",
    )
    webhook_time_scale: float = Field(default=1.0, gt=0, description="divides webhook retry delays")
    webhook_retry_schedule: str = Field(
        default="15,15,30,180,600,1200,1800,1800,1800,3600,10800,10800,10800,21600,21600",
        description="seconds to wait after each failed webhook attempt (docs/webhooks.md); then FAILED",
    )
    webhook_concurrency: int = Field(default=128, ge=1, description="webhook attempts in flight per worker process")
    webhook_allowed_networks: str = Field(default="", description="CIDRs webhooks may reach despite SSRF guard")
    business_timezone: str = Field(default="Asia/Shanghai", description="time zone of business dates")
    recon_suspense_minutes: int = Field(
        default=10, ge=0, le=720, description="a one-sided statement row this close to midnight waits for the next days"
    )
    recon_catch_up_days: int = Field(default=7, ge=1, le=90, description="how far back the daily run catches up")
    ledger_check_every_s: float = Field(
        default=3600.0, ge=60, description="how often the scheduler runs the full ledger check"
    )
    refund_window_days: int = Field(default=365, ge=1, description="how long after payment refunds are allowed")
    barcode_wait_s: float = Field(
        default=5.0, ge=0, le=60, description="how long a barcode create waits for the channel's final answer"
    )
    barcode_poll_s: float = Field(
        default=2.5, gt=0, le=60, description="how often an unconfirmed barcode payment is asked about"
    )
    barcode_confirm_s: float = Field(
        default=30.0, gt=0, le=600, description="seconds after creation an unconfirmed barcode payment is reversed"
    )
    retention_event_days: int = Field(
        default=90, ge=1, description="days an app's events (GET /v1/events, webhook payloads) stay in the outbox"
    )
    retention_outbox_days: int = Field(
        default=7, ge=1, description="days an outbox row of no app (an internal event) stays once published and booked"
    )
    retention_attempt_days: int = Field(
        default=30, ge=1, description="days the webhook attempts of a finished delivery are kept"
    )
    retention_batch: int = Field(
        default=5000, ge=1, le=100000, description="rows the retention job deletes per statement"
    )
    log_level: str = Field(default="INFO", description="root log level")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text lines, or one JSON object per line carrying the request id (json)"
    )
    access_log: bool = Field(default=True, description="one log line per HTTP request (logger tomato.access)")
    metrics_enabled: bool = Field(default=True, description="serve GET /metrics (off: 404)")
    metrics_token: str | None = Field(
        default=None, description="when set, GET /metrics needs 'Authorization: Bearer <token>'"
    )
    docs_enabled: bool = Field(default=True, description="serve /docs, /redoc and /openapi.json (off: 404)")
    docs_token: str | None = Field(
        default=None, description="when set, /docs, /redoc and /openapi.json need the token (Bearer, or Basic password)"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address the worker's and scheduler's /metrics bind")
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="port of `tomato worker`'s own /metrics; 0: not served"
    )
    scheduler_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="port of `tomato scheduler`'s own /metrics; 0: not served"
    )

    @field_validator(
        "redis_url", "amqp_url", "secret_keys", "admin_tokens", "metrics_token", "docs_token", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads `TOMATO_CONFIG_FILE` (or `config/tomato.toml` when present); keys are setting names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("TOMATO_CONFIG_FILE")
        candidate = Path(path) if path else Path("config") / "tomato.toml"
        if not candidate.is_file():
            return {}
        with candidate.open("rb") as fh:
            data = tomllib.load(fh)
        section = data.get("tomato", data)
        return {k: v for k, v in section.items() if k in self.settings_cls.model_fields}


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
