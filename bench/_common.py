"""Shared benchmark plumbing: subprocesses torn down for sure, /proc CPU accounting, wrk with a replay script.

Nothing here knows about Tomato Pay; `bench/create_order.py` is the driver. Linux only (reads /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")

# --- processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on right now (the tiny race until the server binds is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """One started subprocess: its own session (process group), its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the process group we created (the server and its workers), SIGKILL after `grace_s`."""
        if self.popen.poll() is not None:
            _kill_group(self.pid, signal.SIGKILL)  # stray workers of a dead supervisor
            return
        _kill_group(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _kill_group(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        _kill_group(self.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Services:
    """Starts subprocesses and stops every one of them, newest first, whatever happened."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> Service:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        service = Service(name, popen, log_path)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def wait_http(url: str, service: Service, timeout_s: float = 60.0) -> None:
    """Until GET `url` answers 200; fails at once if the service died meanwhile."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited with {service.popen.returncode}:\n{service.log_tail()}")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready at {url} after {timeout_s}s ({last}):\n{service.log_tail()}")


# --- CPU accounting from /proc -----------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'
    head, _, rest = raw.rpartition(")")
    return [head.partition("(")[2], *rest.split()]  # [comm, state, ppid, ...]


def _all_stats() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                out[int(entry)] = fields
    return out


def _cpu_s(fields: list[str]) -> float:
    # after [comm, state]: ppid is index 2; utime/stime are stat fields 14/15 -> indices 12/13 here
    return (int(fields[12]) + int(fields[13])) / CLK_TCK


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[2]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def tree_cpu_s(root: int) -> dict[int, float]:
    """utime + stime (seconds) per live process of the tree under `root`, every thread included."""
    out: dict[int, float] = {}
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = _cpu_s(fields)
    return out


def comm_cpu_s(names: Iterable[str]) -> dict[int, float]:
    """CPU seconds per live process whose comm is one of `names` (machine-wide: other users included)."""
    wanted = set(names)
    return {pid: _cpu_s(f) for pid, f in _all_stats().items() if f[0] in wanted}


PG_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher",
             "/bin/postgres ")


def postgres_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds per PostgreSQL process working for `database`: its backends and autovacuum workers (their
    command line names it), plus the shared processes (postmaster, WAL writer, checkpointer …). Other databases'
    backends are left out, so a neighbour's test suite shows up as "others", not as our database cost."""
    out: dict[int, float] = {}
    for pid, fields in _all_stats().items():
        if fields[0] != "postgres":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f" {database} " in cmdline + " " or any(name in cmdline for name in PG_SHARED):
            out[pid] = _cpu_s(fields)
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user/nice
    return total - idle, total


def children_cpu_s() -> float:
    """CPU seconds of our terminated and reaped children (used around a wrk run)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def as_probe(counter: Callable[[], float]) -> Callable[[], dict[int, float]]:
    """A process-less CPU counter (getrusage) in the per-process shape CpuSample expects."""
    return lambda: {0: counter()}


@dataclass
class CpuSample:
    """A snapshot of everything the report attributes CPU to: `probes` name → {pid: CPU seconds so far}."""

    at: float
    procs: dict[str, dict[int, float]]
    machine_busy: int
    machine_total: int

    @classmethod
    def take(cls, probes: dict[str, Callable[[], dict[int, float]]]) -> CpuSample:
        procs = {name: probe() for name, probe in probes.items()}
        busy, total = machine_ticks()
        return cls(time.monotonic(), procs, busy, total)

    def delta(self, later: CpuSample) -> dict[str, float]:
        """CPU seconds per probe between two samples, plus `elapsed` (s), `machine_cores` (cores busy on
        average, whole machine) and `others_cores` (cores busy on average outside every probe: a neighbour).

        Per process: a process that started in between counts from zero; one that exited is not seen (its last
        moments are lost, never subtracted)."""
        out = {
            name: sum(max(0.0, cpu - self.procs[name].get(pid, 0.0)) for pid, cpu in later.procs[name].items())
            for name in self.procs
        }
        out["elapsed"] = later.at - self.at
        total = later.machine_total - self.machine_total
        ncpu = os.cpu_count() or 1
        out["machine_cores"] = ncpu * (later.machine_busy - self.machine_busy) / total if total else 0.0
        ours = sum(out[name] for name in self.procs)
        out["others_cores"] = max(0.0, out["machine_cores"] - ours / out["elapsed"]) if out["elapsed"] else 0.0
        return out


# --- wrk ---------------------------------------------------------------------------------------------------

# One script for both targets: either replays a pool of pre-built raw HTTP requests (one file per wrk thread,
# each used once) or repeats wrk's own request; counts every response whose status is not the expected one and
# keeps the first such response for the error message. `done` prints one JSON line for the driver.
WRK_LUA = r"""
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  expect = tonumber(args[1])
  local prefix = args[2]
  badfile = args[3] .. "." .. id
  bad, exhausted, used, n = 0, 0, 0, 0
  pool = {}
  if prefix == "-" then
    fixed = wrk.format()
    return
  end
  local f = assert(io.open(prefix .. "." .. id, "rb"))
  local data = f:read("*a")
  f:close()
  local pos, len = 1, #data
  while pos <= len do
    local nl = string.find(data, "\n", pos, true)
    local size = tonumber(string.sub(data, pos, nl - 1))
    n = n + 1
    pool[n] = string.sub(data, nl + 1, nl + size)
    pos = nl + size + 1
  end
end

function request()
  if n == 0 then
    return fixed
  end
  used = used + 1
  if used > n then
    exhausted = exhausted + 1  -- resending the last request fails (nonce reused) and is counted as bad
    return pool[n]
  end
  return pool[used]
end

function response(status, headers, body)
  if status ~= expect then
    bad = bad + 1
    if bad == 1 then
      local f = io.open(badfile, "wb")
      if f then
        f:write(tostring(status), "\n", body or "")
        f:close()
      end
    end
  end
end

function done(summary, latency, requests)
  local tb, te, tu = 0, 0, 0
  for _, t in ipairs(threads) do
    tb = tb + (t:get("bad") or 0)
    te = te + (t:get("exhausted") or 0)
    tu = tu + (t:get("used") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bad_status": %d, "exhausted": %d, "sent": %d, '
    .. '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, tb, te, tu, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max, latency.mean))
end
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    bad_status: int
    exhausted: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    client_cpu_s: float
    first_bad: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def write_pool(path: Path, requests: Iterable[bytes]) -> int:
    """A request pool file for one wrk thread: `<length>\\n<raw request>` repeated."""
    n = 0
    with path.open("wb") as fh:
        for raw in requests:
            fh.write(b"%d\n" % len(raw))
            fh.write(raw)
            n += 1
    return n


def run_wrk(
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int,
    expect_status: int,
    work_dir: Path,
    pool_prefix: Path | None = None,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Closed-loop load: `connections` keep-alive connections over `threads` wrk threads."""
    script = work_dir / "bench.lua"
    if not script.exists():
        script.write_text(WRK_LUA)
    bad_prefix = work_dir / f"bad-{time.monotonic_ns()}"
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", f"--timeout={timeout_s:g}s",
        "-s", str(script), url, "--", str(expect_status), str(pool_prefix) if pool_prefix else "-", str(bad_prefix),
    ]
    before = children_cpu_s()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 120)
    client_cpu = children_cpu_s() - before
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    first_bad = ""
    for path in sorted(work_dir.glob(bad_prefix.name + ".*")):
        first_bad = first_bad or path.read_text(errors="replace")[:2000]
        path.unlink()
    return WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        bad_status=int(raw["bad_status"]),
        exhausted=int(raw["exhausted"]),
        socket_errors=sum(int(raw[k]) for k in ("err_connect", "err_read", "err_write", "err_timeout")),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        client_cpu_s=client_cpu,
        first_bad=first_bad,
        raw=raw,
    )


# --- the bare baseline app ----------------------------------------------------------------------------------


def bare_app() -> Any:
    """The reference anchor: FastAPI, one GET returning a small dict (served by uvicorn --factory)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "ok", "service": "bare"}

    return app


# --- small helpers ------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """`median [min–max]` as the reference baselines write it."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"
