from sqlalchemy import text


async def test_migrated_schema_has_outbox(db) -> None:
    async with db.engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM outbox_events"))).scalar_one()
    assert count == 0
