"""Merchant webhooks: deliveries, attempts, retry schedule and resend (consumes pay.* and refund.* events)."""
