"""Process roles: the ASGI factory for `serve`, background loops (relay, consumers, jobs) and the dev stack."""
