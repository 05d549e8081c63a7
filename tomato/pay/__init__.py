"""Pay orders, attempts, refunds and their state machines; publishes pay.* and refund.* events."""
