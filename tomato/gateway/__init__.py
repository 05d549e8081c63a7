"""The HTTP edge: app factory, merchant auth, error mapping, routers (merchant API, callbacks, cashier, admin)."""
