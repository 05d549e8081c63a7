"""Deletes what earlier test runs left on the local test broker: their vhosts and, in the default vhost, queues
and exchanges with test prefixes.

Run by .ci/run before the suite: hundreds of leftover quorum queues make the broker's app restarts very slow. Test
stacks run in vhosts named `tomato-test-…` that their fixtures delete (tests/fixtures/rabbit.py); one is left only
when a run was killed before its teardown. Older runs declared prefixed names in the default vhost. `--dry-run` lists
what would go and deletes nothing.
"""

import argparse
import asyncio
import subprocess
import sys

import aio_pika

VHOST_PREFIX = "tomato-test-"
PREFIXES = ("tomato-test-", "tomato_e2e_", "tomato_test_", "tomato_bench", "bench", "tomato.")


def rabbitmqctl(*args: str) -> list[str]:
    done = subprocess.run(["rabbitmqctl", "-q", "--no-table-headers", *args], capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


async def main(dry_run: bool) -> int:
    vhosts = [v for v in rabbitmqctl("list_vhosts", "name") if v.startswith(VHOST_PREFIX)]
    queues = [n for n in rabbitmqctl("list_queues", "-p", "/", "name") if n.startswith(PREFIXES)]
    exchanges = [n for n in rabbitmqctl("list_exchanges", "-p", "/", "name") if n.startswith(PREFIXES)]
    if dry_run:
        for kind, names in (("vhost", vhosts), ("queue", queues), ("exchange", exchanges)):
            for name in names:
                print(f"would delete {kind} {name}")
        return 0
    for vhost in vhosts:
        rabbitmqctl("delete_vhost", vhost)
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/", timeout=30)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)
    print(f"purged {len(vhosts)} leftover test vhosts, {len(queues)} queues and {len(exchanges)} exchanges")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    sys.exit(asyncio.run(main(parser.parse_args().dry_run)))
