"""`python -m koan.cli`: the same as the `koan` command."""

from koan.cli import app

app()
