"""A stack on RabbitMQ leaves nothing on the broker once it stops: it runs in its own virtual host, deleted with
everything in it when the stack's fixture ends, so runs (and runs that were killed) never pile up queues."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AMQP_URL
from tests.e2e.conftest import running_dev
from tests.fixtures.rabbit import list_queues, list_vhosts, manageable, vhost_of


def test_a_dev_stack_on_rabbitmq_leaves_no_vhost_and_no_queue_behind(tmp_path: Path) -> None:
    if not manageable(AMQP_URL):
        pytest.skip("vhosts are made with rabbitmqctl, which needs the broker on this machine")
    with running_dev("services", tmp_path) as stack:
        vhost, prefix = vhost_of(stack.env["TOMATO_AMQP_URL"]), stack.env["TOMATO_AMQP_PREFIX"]
        assert vhost != "/", "the stack runs in a vhost of its own"
        assert any(q.startswith(f"{prefix}.") for q in list_queues(vhost))  # it did declare its queues there
    assert vhost not in list_vhosts()
    leftovers = [(vh, q) for vh in list_vhosts() for q in list_queues(vh) if q.startswith(f"{prefix}.")]
    assert leftovers == []
