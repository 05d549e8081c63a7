"""Merchant webhooks: deliveries (one per event and target URL), attempts, the retry schedule, resend.

Consumes `pay.*`, `refund.*` and `payout.*` from the event bus; publishes nothing. Flow: `consumers` (event →
delivery row) → `queues` (wake-ups: in-process or RabbitMQ TTL tiers) → `worker` (claim, sign, POST, record) →
`sweeper` (re-enqueues what a lost message left behind). `service` serves the admin API and `GET /v1/events`.
"""
