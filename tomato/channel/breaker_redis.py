"""The breaker state in Redis: one hash per account, every transition one atomic Lua call (one round trip).

The script is `breaker_state.step` written in Lua; the tests run the same scenarios on both. The caller passes the
time (epoch seconds from its clock), so hosts are expected to keep their clocks in step (NTP) — as request
timestamps already require — and tests can use a fake clock. The hash expires an hour (or four reset timeouts)
after its last change: the state is only worth keeping while the account is being called.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from tomato.channel.breaker_state import Op, Shared, Verdict
from tomato.core.resp import ScriptRunner

FIELDS = ("s", "f", "o", "p", "t")  # state, failures, opened_at, probe_until, probe_token

_STEP_LUA = """
local k = KEYS[1]
local op, now, fail_max, reset, token, ttl_ms =
  ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], ARGV[6]
local h = redis.call('HMGET', k, 's', 'f', 'o', 'p', 't')
local s, f, o, p, t = h[1] or 'closed', tonumber(h[2] or '0'), tonumber(h[3] or '0'), tonumber(h[4] or '0'), h[5] or ''
local verdict, changed = 'go', false
local mine = s == 'open' and token ~= '' and t == token
if op == 'acquire' then
  if s == 'open' then
    if now < o + reset or p > now then
      verdict = 'refused'
    else
      verdict, p, t, changed = 'probe', now + reset, token, true
    end
  end
elseif op == 'success' then
  if s == 'closed' then
    if f ~= 0 then f, changed = 0, true end
  elseif mine then
    s, f, o, p, t, changed = 'closed', 0, 0, 0, '', true
  end
elseif op == 'failure' then
  if s == 'closed' then
    f, changed = f + 1, true
    if f >= fail_max then s, o = 'open', now end
  elseif mine then
    o, p, t, changed = now, 0, '', true
  end
elseif op == 'release' then
  if mine then p, t, changed = 0, '', true end
end
local fo, fp = string.format('%.6f', o), string.format('%.6f', p)
if changed then
  if s == 'closed' and f == 0 then
    redis.call('DEL', k)
  else
    redis.call('HSET', k, 's', s, 'f', tostring(f), 'o', fo, 'p', fp, 't', t)
    redis.call('PEXPIRE', k, ttl_ms)
  end
end
return {verdict, s, tostring(f), fo, fp, t}
"""


def _shared(s: object, f: object, o: object, p: object, t: object) -> Shared:
    return Shared(
        state=str(s or "closed"),
        failures=int(str(f or 0)),
        opened_at=float(str(o or 0)),
        probe_until=float(str(p or 0)),
        probe_token=str(t or ""),
    )


class RedisBreakerStore:
    def __init__(self, redis: Redis, prefix: str, scripts: ScriptRunner | None = None) -> None:
        """`scripts`: the cache's own script connection (core.resp), for the outcome every channel call records."""
        self._redis = redis
        self._prefix = prefix
        self._step = redis.register_script(_STEP_LUA)
        self._scripts = scripts
        self._step_sha = scripts.register(_STEP_LUA) if scripts is not None else ""

    def _key(self, account_id: str) -> str:
        return f"{self._prefix}breaker:{account_id}"

    async def apply(
        self, account_id: str, op: Op, *, now: float, fail_max: int, reset_s: float, token: str
    ) -> tuple[Verdict, Shared]:
        ttl_ms = math.ceil(max(3600.0, 4 * reset_s) * 1000)
        keys, args = [self._key(account_id)], [op.value, repr(now), fail_max, repr(reset_s), token, ttl_ms]
        if self._scripts is not None:
            reply = await self._scripts.run(self._step_sha, keys, args)
        else:
            reply = await self._step(keys=keys, args=args)
        return Verdict(str(reply[0])), _shared(*reply[1:])

    async def read(self, account_ids: list[str]) -> dict[str, Shared]:
        """Every account's state in one round trip (routing reads its candidates together)."""
        pipe = self._redis.pipeline(transaction=False)
        for account_id in account_ids:
            pipe.hmget(self._key(account_id), list(FIELDS))
        rows = await pipe.execute()
        return {a: _shared(*row) for a, row in zip(account_ids, rows, strict=True)}
