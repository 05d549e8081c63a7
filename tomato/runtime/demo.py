"""`tomato demo`: the whole product in one command. Starts the `tomato dev` stack in-process (embedded backends
unless `TOMATO_*` settings name PostgreSQL, Redis and RabbitMQ) with a webhook receiver of its own, tells one story
over HTTP with a progress line per step (runtime.demo_story), prints the money figures, and exits 0 — or non-zero
with a line naming the step that failed and why. `--keep` leaves the stack serving until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tomato.core.settings import Settings
from tomato.runtime.demo_client import ResponseRefused, SignedClient, WebhookReceiver
from tomato.runtime.demo_stack import DemoStack, StackFailed, prepare_data_dir, running_stack
from tomato.runtime.demo_story import StepFailed, Story, yuan
from tomato.runtime.seed import DEMO_OWNER
from tomato.runtime.shutdown import on_stop_signal

Out = Callable[[str], None]
INTERRUPTED = 130  # what shells report for Ctrl-C


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 9100
    data_dir: Path | None = None
    keep: bool = False


class DemoFailed(Exception):
    def __init__(self, number: int, title: str, reason: str) -> None:
        super().__init__(f"tomato demo failed at step {number} ({title}): {reason}")


STORY: tuple[tuple[str, Callable[[Story], Awaitable[str]]], ...] = (
    ("create a signed order on each channel", Story.create_orders),
    ("the payer pays each in the simulator", Story.pay_orders),
    ("webhooks received and verified", Story.webhooks),
    ("merchant balance (pending)", Story.pending_balance),
    ("partial refund of the Alipay order", Story.partial_refund),
    ("settlement run", Story.settle),
    ("payout from available (bank)", Story.pay_out),
    ("reconciliation of the day, each account", Story.reconcile),
    ("ledger check", Story.ledger_check),
    ("summary", Story.summarize),
)
TOTAL = len(STORY) + 1  # starting the stack is step 1


@dataclass
class StepLine:
    result: str = ""


class Progress:
    def __init__(self, out: Out) -> None:
        self.out, self.number = out, 0

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[StepLine]:
        """Times one step and prints its line; any error becomes `DemoFailed` naming the step."""
        self.number += 1
        line = StepLine()
        started = time.monotonic()
        try:
            yield line
        except (StepFailed, StackFailed, ResponseRefused) as exc:
            reason = str(exc)
        except Exception as exc:  # whatever else broke (a connection, an answer of another shape): named, no trace
            reason = f"{type(exc).__name__}: {exc}"
        else:
            self.out(self._line(title, line.result, time.monotonic() - started))
            return
        self.out(self._line(title, f"FAILED: {reason}", time.monotonic() - started))
        raise DemoFailed(self.number, title, reason)

    def _line(self, title: str, result: str, elapsed: float) -> str:
        return f"[{self.number:>2}/{TOTAL}] {title:<42} {result}  ({elapsed:.1f} s)"


async def run_demo(base: Settings, options: DemoOptions, out: Out = print) -> int:
    """Runs the story; returns the exit status: 0 (also after Ctrl-C ends a `--keep`), 1 when a step failed, 130
    when Ctrl-C interrupted the story."""
    stop, keeping, progress = asyncio.Event(), asyncio.Event(), Progress(out)
    on_stop_signal(stop)
    story = asyncio.create_task(_story(base, options, progress, stop, keeping))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([story, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if story.done() or keeping.is_set():  # a kept stack stops itself once `stop` is set
        return await story
    story.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await story
    out(f"tomato demo interrupted at step {progress.number}")
    return INTERRUPTED


async def _story(
    base: Settings, options: DemoOptions, progress: Progress, stop: asyncio.Event, keeping: asyncio.Event
) -> int:
    started, out = time.monotonic(), progress.out
    out(f"Tomato Pay demo: gateway, worker, scheduler and channel simulator in one process ({_backends(base)})")
    receiver = WebhookReceiver(secret="")
    try:
        async with contextlib.AsyncExitStack() as running:
            with progress.step("start the stack") as line:
                data_dir = prepare_data_dir(options.data_dir)
                url = await receiver.start()  # on loopback whatever --host says: webhooks may go there (dev rules)
                running.push_async_callback(receiver.close)
                stack = await running.enter_async_context(running_stack(
                    base, host=options.host, port=options.port, sandbox_port=options.sandbox_port,
                    data_dir=data_dir, notify_url=url,
                ))  # fmt: skip
                receiver.secret = stack.credentials.app_secret
                line.result = f"gateway {stack.base_url} · simulator {stack.sandbox_url} · webhooks to {url}"
            http = await running.enter_async_context(httpx.AsyncClient(base_url=stack.base_url, timeout=30))
            sandbox = await running.enter_async_context(httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30))
            merchant = SignedClient(http, stack.credentials.app_id, stack.credentials.app_secret)
            story = Story(stack, merchant, http, sandbox, receiver)
            for title, run in STORY:
                with progress.step(title) as line:
                    line.result = await run(story)
            _summary(story, out, time.monotonic() - started)
            if options.keep:
                _print_keep(stack, out)
                keeping.set()
                await stop.wait()
    except DemoFailed as failed:
        out(str(failed))
        return 1
    return 0


def _summary(story: Story, out: Out, elapsed: float) -> None:
    out("")
    out(f"  {'money':<34} {'fen':>10} {'CNY':>14}")
    for name, fen in story.figures:
        out(f"  {name:<34} {fen:>10} {yuan(fen):>14}")
    receiver = story.receiver
    events = {w.event_id for w in receiver.received if w.verified}  # delivered at least once: count events once
    rejected = f", {receiver.rejected} REJECTED" if receiver.rejected else ", every signature verified"
    out("")
    out(f"  webhooks: {len(events)} events in {len(receiver.received)} deliveries{rejected}")
    settings = story.stack.c.settings
    if settings.is_sqlite:  # the same settings let `tomato ledger check` and friends read what the demo left
        where = f"TOMATO_DATABASE_URL={settings.database_url} TOMATO_DATA_DIR={settings.data_dir}"
    else:
        where = "the database of TOMATO_DATABASE_URL"
    out(f"  data: {where}")
    out(f"  done in {elapsed:.1f} s")


def _print_keep(stack: DemoStack, out: Out) -> None:
    creds = stack.credentials
    out("")
    out("The stack keeps running (Ctrl-C stops it):")
    for name, url in (("API", stack.base_url), ("console", f"{stack.base_url}/console"),
                      ("portal", f"{stack.base_url}/portal"),
                      ("API docs", f"{stack.base_url}/docs"), ("simulator", stack.sandbox_url)):  # fmt: skip
        out(f"  {name:<10} {url}")
    out(f"  merchant   {creds.mch_no}, app {creds.app_id}, secret {creds.app_secret}")
    out(f"  portal owner {DEMO_OWNER}: set a password and TOTP at {stack.base_url}{creds.portal_invite_path}")
    for role, token in creds.admin_tokens.items():
        out(f"  {role + ' token':<10} {token}")


def _backends(settings: Settings) -> str:
    parts = ["SQLite" if settings.is_sqlite else "PostgreSQL"]
    parts.append("Redis" if settings.redis_url else "in-process cache")
    parts.append("RabbitMQ" if settings.amqp_url else "in-process bus")
    return ", ".join(parts)
