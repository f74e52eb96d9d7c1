"""``jifen audit`` (the ``jifen.cli`` entry point ``jifen.points.audit.cli:app``): the typer
commands are in ``cli_typer``, imported on first use of ``app``, so this module imports nothing
heavy."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from jifen.points.audit.cli_typer import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
