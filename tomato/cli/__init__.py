"""The `tomato` command: one CLI for every process role (`roles`) and the operator's one-off tasks (`tasks`)."""

from tomato.cli import roles, tasks  # noqa: F401 - the commands register on the app
from tomato.cli.apps import app

__all__ = ["app"]
