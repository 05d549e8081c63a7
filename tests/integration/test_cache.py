from tomato.core.cache import NonceStore


async def test_nonce_is_accepted_once(cache) -> None:
    store = NonceStore(cache, ttl_s=900)
    assert await store.use("A1", "abcdefghijklmnop")
    assert not await store.use("A1", "abcdefghijklmnop")
    assert await store.use("A2", "abcdefghijklmnop")
