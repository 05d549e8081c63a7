"""Daily reconciliation of channel statements against orders and refunds."""
