"""The signed merchant API `/v1` (API.md §1); every route uses `SignedRoute`."""
