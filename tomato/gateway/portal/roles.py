"""Who may open what in the portal. The owner may do everything; each other role has its own part."""

from __future__ import annotations

EVERYONE = ("owner", "developer", "finance", "support")
REFUNDERS = ("owner", "developer", "support")  # refund an order (the API's rules)
FINANCE = ("owner", "finance")  # balance, settlements, payouts, statements
DEVELOPERS = ("owner", "developer")  # apps, keys, notify_url, webhook deliveries
OWNERS = ("owner",)  # users
