"""The payer-facing side of the cashier page: what it says in each language, and how it is rendered.

The routes are in `gateway/routers/cashier.py`; the Jinja2 templates in `gateway/templates/cashier/`.
"""
