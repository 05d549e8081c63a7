"""Merchants and their apps: status, signing keys (encrypted at rest, up to two active for rotation), enabled pay
methods, limits; admin tokens and the platform's own response-signing key. Publishes no events yet.
"""
