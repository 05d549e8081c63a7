"""Channel adapters, one package per channel: adapter.py (flows), codec.py (wire fields), signing.py."""
