"""``jifen``: the command line. ``jifen token create``, ``jifen stack up|down``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from jifen.kernel.auth import Role, issue_token, rotate_signing_key
from jifen.kernel.settings import REPO_ROOT

app = typer.Typer(
    help="Jifen: community volunteer points.", no_args_is_help=True, pretty_exceptions_enable=False
)
token = typer.Typer(help="Development tokens.", no_args_is_help=True)
stack = typer.Typer(
    help="The embedded stack (what `make run` and `make stop` call).", no_args_is_help=True
)
app.add_typer(token, name="token")
app.add_typer(stack, name="stack")

KeysDir = Annotated[
    Path, typer.Option(envvar="JIFEN_KEYS_DIR", help="Where the signing keys live.")
]


@token.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="The role the token grants.")],
    org: Annotated[str, typer.Option(help="The organisation the token belongs to.")],
    subject: Annotated[str, typer.Option(help="Who: an account, officer, app or merchant id.")],
    ttl: Annotated[int, typer.Option(min=60, max=30 * 24 * 3600, help="Lifetime in seconds.")] = 12
    * 3600,
    keys_dir: KeysDir = REPO_ROOT / "var" / "keys",
) -> None:
    """Print a bearer token signed with the stack's key (created on first use)."""
    typer.echo(issue_token(keys_dir, subject=subject, role=role, org=org, ttl_seconds=ttl))


@token.command("rotate")
def token_rotate(keys_dir: KeysDir = REPO_ROOT / "var" / "keys") -> None:
    """Make a new signing key current; tokens signed with older keys stay valid until expiry."""
    typer.echo(f"new signing key {rotate_signing_key(keys_dir)}")


@stack.command("up")
def stack_up() -> None:
    """Start everything in the foreground; Ctrl-C stops it all."""
    from jifen.kernel.devstack import run

    sys.exit(run())


@stack.command("down")
def stack_down() -> None:
    """Stop a running `make run` from another shell."""
    from jifen.kernel.devstack import down

    sys.exit(down())


@app.command("demo")
def demo(
    volunteers: Annotated[int, typer.Option(min=10, max=2000)] = 300,
    jobs: Annotated[int, typer.Option(min=5, max=500)] = 60,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 7,
    keys_dir: KeysDir = REPO_ROOT / "var" / "keys",
) -> None:
    """Drive the running stack (`make run`) through a simulated month of a district."""
    import os

    from jifen.kernel.simulate import main as simulate

    def url(name: str, port: int) -> str:
        return f"http://127.0.0.1:{os.environ.get(f'JIFEN_{name.upper()}_PORT', port)}"

    urls = {
        "tasks": url("tasks", 8001),
        "points": url("points", 8002),
        "redeem": url("redeem", 8003),
    }
    sys.exit(simulate(urls, keys_dir, url("prometheus", 9090), volunteers, jobs, seed))


def _load_plugins() -> None:
    """Services add their own command groups (e.g. ``jifen audit``) through the ``jifen.cli``
    entry-point group, so the kernel never imports a service."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="jifen.cli"):
        app.add_typer(ep.load(), name=ep.name)


def main() -> None:
    _load_plugins()
    app()


if __name__ == "__main__":
    main()
