"""Deletes queues and exchanges left on the local test broker by earlier test runs (names with test prefixes).

Run by .ci/run before the suite: hundreds of leftover quorum queues make the broker's app restarts very slow.
"""

import asyncio
import subprocess
import sys

import aio_pika

PREFIXES = ("tomato-test-", "tomato_e2e_", "tomato_test_", "tomato_bench", "bench", "tomato.")


async def main() -> int:
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, timeout=120)
    names = [n.strip() for n in listed.stdout.splitlines() if n.strip().startswith(PREFIXES)]
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/", timeout=30)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
    print(f"purged {len(names)} leftover test queues")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
