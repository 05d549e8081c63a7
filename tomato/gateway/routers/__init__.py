"""HTTP routers; each route parses, calls one service function and shapes the response."""
