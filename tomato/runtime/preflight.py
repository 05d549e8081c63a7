"""Start-up rules: a process refuses to run where its per-process state would be unsafe, and says why.

Request nonces, rate limits and Idempotency-Keys live in Redis when `TOMATO_REDIS_URL` is set, else in the memory of
one process. That is right for the embedded single process and wrong as soon as a second process serves the
merchant API: a replay sent to another worker would pass. Several `serve` workers, or PostgreSQL (which exists to
be shared by several processes), therefore need Redis. PostgreSQL also needs `TOMATO_SECRET_KEYS` for every role:
a key generated on one host cannot decrypt the secrets another host wrote.
"""

from __future__ import annotations

from tomato.core.settings import Settings


class StartupRefused(RuntimeError):
    """The settings describe an unsafe deployment; the message lists each reason."""


def startup_problems(settings: Settings, *, serves_api: bool, workers: int = 1) -> list[str]:
    """`serves_api`: the process answers the merchant API (`serve`, `dev`), so nonces and limits matter."""
    problems = []
    shared = [f"{workers} serve workers"] if workers > 1 else []
    shared += [] if settings.is_sqlite else ["PostgreSQL as the database"]
    if serves_api and settings.redis_url is None and shared:
        problems.append(
            f"{' and '.join(shared)} need TOMATO_REDIS_URL: request nonces, rate limits and Idempotency-Keys would "
            "be kept in one process's memory, so a replayed request sent to another process would pass"
        )
    if not settings.is_sqlite and settings.secret_keys is None:
        problems.append(
            "PostgreSQL as the database needs TOMATO_SECRET_KEYS: a key generated on this host cannot decrypt "
            "the secrets other hosts wrote"
        )
    return problems


def check_startup(settings: Settings, *, serves_api: bool, workers: int = 1) -> None:
    problems = startup_problems(settings, serves_api=serves_api, workers=workers)
    if problems:
        raise StartupRefused("tomato refuses to start:\n  - " + "\n  - ".join(problems))
