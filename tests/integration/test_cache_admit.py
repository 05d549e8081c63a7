"""`Cache.admit`: the nonce, the app's rate limit and an Idempotency-Key claim in one store call decide exactly what
the separate calls decide, in the same order (a reused nonce touches nothing else; a refused rate touches no slot)."""

from tomato.core.cache import MemoryCache, RedisCache

NONCE_TTL, SLOT_TTL = 900.0, 120.0


async def test_a_nonce_is_admitted_once_and_a_reuse_looks_at_nothing_else(cache: MemoryCache | RedisCache) -> None:
    first = await cache.admit("nonce:A1:n1", NONCE_TTL, "app:A1", 1000.0, 10)
    assert first.nonce_fresh and first.rate is not None and first.rate.allowed
    assert not first.claimed and first.stored is None
    again = await cache.admit("nonce:A1:n1", NONCE_TTL, "app:A1", 1000.0, 10, "idem:A1:k", "running", SLOT_TTL)
    assert not again.nonce_fresh and again.rate is None
    assert await cache.get("idem:A1:k") is None  # the replay claimed no slot
    assert await cache.set_nx("nonce:A1:n1", "1", NONCE_TTL) is False  # the separate call agrees: it was used
    assert (await cache.admit("nonce:A2:n1", NONCE_TTL, "app:A2", 1000.0, 10)).nonce_fresh  # per app


async def test_the_rate_limit_counts_only_admitted_nonces_and_refuses_past_the_burst(
    cache: MemoryCache | RedisCache,
) -> None:
    decisions = [await cache.admit(f"nonce:A1:r{i}", NONCE_TTL, "app:A1", 0.01, 2) for i in range(4)]
    assert [d.rate.allowed for d in decisions if d.rate is not None] == [True, True, False, False]
    refused = decisions[-1].rate
    assert refused is not None and 0 < refused.retry_after_s <= 200
    refused_with_slot = await cache.admit("nonce:A1:r9", NONCE_TTL, "app:A1", 0.01, 2, "idem:A1:k", "v", SLOT_TTL)
    assert refused_with_slot.rate is not None and not refused_with_slot.rate.allowed
    assert await cache.get("idem:A1:k") is None  # refused: the key stays free
    # the separate limiter sees the same state (one GCRA per app, whichever call made it)
    assert not (await cache.rate_limit("app:A1", 0.01, 2)).allowed


async def test_the_slot_is_claimed_once_then_its_value_comes_back(cache: MemoryCache | RedisCache) -> None:
    claimed = await cache.admit("nonce:A1:s1", NONCE_TTL, "app:A1", 1000.0, 10, "idem:A1:k", "running", SLOT_TTL)
    assert claimed.nonce_fresh and claimed.claimed and claimed.stored is None
    assert await cache.get("idem:A1:k") == "running"
    await cache.set("idem:A1:k", "done", SLOT_TTL)
    found = await cache.admit("nonce:A1:s2", NONCE_TTL, "app:A1", 1000.0, 10, "idem:A1:k", "other", SLOT_TTL)
    assert found.nonce_fresh and not found.claimed and found.stored == "done"
    assert await cache.get("idem:A1:k") == "done"  # not overwritten
