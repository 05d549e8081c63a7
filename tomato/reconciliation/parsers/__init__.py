"""Streaming parsers of the channels' statement files, one module per format (docs/reconciliation.md)."""
