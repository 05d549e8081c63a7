"""The signed merchant API `/v1` (docs/api.md); every route uses `SignedRoute`."""
