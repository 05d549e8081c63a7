"""Operator and finance API under `/admin` (bearer tokens with roles)."""
