"""The development commands of ``jifen``: ``jifen stack up|down`` (``make run``, ``make stop``)
and ``jifen demo`` (``make demo``).

The ``jifen`` command itself is the kernel's (``jifen.kernel.cli``: ``token``, ``keys``, which a
service image needs without these tools); these join it through the ``jifen.cli`` entry-point
group named in tools/pyproject.toml. ``python -m jifen.devtools.cli`` is the whole command."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from jifen.kernel.cli import KeysDir
from jifen.kernel.settings import REPO_ROOT

stack = typer.Typer(
    help="The embedded stack (what `make run` and `make stop` call).", no_args_is_help=True
)


@stack.command("up")
def stack_up() -> None:
    """Start everything in the foreground; Ctrl-C stops it all."""
    from jifen.devtools.supervisor import run

    sys.exit(run())


@stack.command("down")
def stack_down() -> None:
    """Stop a running `make run` from another shell."""
    from jifen.devtools.supervisor import down

    sys.exit(down())


def demo(
    volunteers: Annotated[int, typer.Option(min=10, max=2000)] = 300,
    jobs: Annotated[int, typer.Option(min=5, max=500)] = 60,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 7,
    keys_dir: KeysDir = REPO_ROOT / "var" / "keys",
) -> None:
    """Drive the running stack (`make run`) through a simulated month of a district."""
    from jifen.devtools.simulate import main as simulate

    def url(name: str, port: int) -> str:
        return f"http://127.0.0.1:{os.environ.get(f'JIFEN_{name.upper()}_PORT', port)}"

    urls = {
        "tasks": url("tasks", 8001),
        "points": url("points", 8002),
        "redeem": url("redeem", 8003),
    }
    sys.exit(simulate(urls, keys_dir, url("prometheus", 9090), volunteers, jobs, seed))


def main() -> None:
    """The whole ``jifen`` command (the kernel's, with every plugin, these included)."""
    from jifen.kernel.cli import main as jifen

    jifen()


if __name__ == "__main__":
    main()
