"""`python -m tomato.cli …`, as tests and operators without the `tomato` script run it."""

from tomato.cli import app

app()
