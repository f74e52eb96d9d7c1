"""``jifen``: the command line: ``jifen token create``, ``jifen keys init`` (which a service image
runs: deploy/compose's ``keys-init``), and the groups the installed packages add through the
``jifen.cli`` entry-point group: ``jifen audit`` (points), ``jifen stack`` and ``jifen demo`` (the
dev tools, ``jifen.devtools``, never in an image).

Start-up imports only what the invoked command needs: ``jifen audit verify`` loads the audit
group alone, not the kernel's token and key commands (which pull in FastAPI through
``jifen.kernel.auth``) nor the other groups, and a group's module may answer a command line
itself without importing typer at all (``_direct``). ``app`` (the whole command, for tests and
``--help``) is built on first use."""

# no `from __future__ import annotations`: typer reads the commands' annotations, and those
# of the kernel's commands name `Role`, imported where they are defined (_kernel_app)
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import typer

    # at run time Annotated[Path, typer.Option(...)], made when first needed (_keys_dir_type)
    KeysDir = Path

HELP = "Jifen: community volunteer points."
# where the stack keeps its keys by default: var/keys in the checkout (jifen.kernel.settings'
# REPO_ROOT, not imported here: pydantic is not needed to parse a command line)
DEFAULT_KEYS_DIR = Path(__file__).resolve().parents[4] / "var" / "keys"


def _keys_dir_type() -> Any:
    """``KeysDir``, the ``--keys-dir`` option's annotation (typer is imported when needed)."""
    import typer

    return Annotated[
        Path, typer.Option(envvar="JIFEN_KEYS_DIR", help="Where the signing keys live.")
    ]


def _root() -> "typer.Typer":
    import typer

    return typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)


def _kernel_app() -> "typer.Typer":
    """The kernel's own groups, ``token`` and ``keys``, on a new root command."""
    import typer

    if "KeysDir" not in globals():  # the commands' annotations below read it
        globals()["KeysDir"] = _keys_dir_type()
    from jifen.kernel.auth import (
        AUDIT_KEYS_SUBDIR,
        PROVISIONED_MARK,
        Role,
        ensure_signing_key,
        issue_token,
        rotate_signing_key,
    )

    root = _root()
    token = typer.Typer(help="Development tokens.", no_args_is_help=True)
    keys = typer.Typer(
        help="A deployment's keys: token signing, audit checkpoints, the metrics scrape "
        "credential.",
        no_args_is_help=True,
    )
    root.add_typer(token, name="token")
    root.add_typer(keys, name="keys")

    @token.command("create")
    def token_create(
        role: Annotated[Role, typer.Option(help="The role the token grants.")],
        org: Annotated[str, typer.Option(help="The organisation the token belongs to.")],
        subject: Annotated[str, typer.Option(help="Who: an account, officer, app or merchant id.")],
        ttl: Annotated[
            int, typer.Option(min=60, max=30 * 24 * 3600, help="Lifetime in seconds.")
        ] = 12 * 3600,
        keys_dir: KeysDir = DEFAULT_KEYS_DIR,
    ) -> None:
        """Print a bearer token signed with the stack's key (created on first use)."""
        typer.echo(issue_token(keys_dir, subject=subject, role=role, org=org, ttl_seconds=ttl))

    @token.command("rotate")
    def token_rotate(keys_dir: KeysDir = DEFAULT_KEYS_DIR) -> None:
        """Make a new signing key current; tokens signed with older keys stay valid until expiry."""
        typer.echo(f"new signing key {rotate_signing_key(keys_dir)}")

    @keys.command("init")
    def keys_init(
        keys_dir: KeysDir = DEFAULT_KEYS_DIR,
        owner: Annotated[
            str | None,
            typer.Option(
                help="UID:GID to own the keys (the services' user, 10001:10001 in deploy/); "
                "needs root. Default: left to whoever runs this."
            ),
        ] = None,
        k8s_secret: Annotated[
            bool,
            typer.Option(
                "--k8s-secret",
                help="Also print the Kubernetes Secret `jifen-keys` holding them, for "
                "`kubectl apply -f -` (see deploy/k8s/secrets.example.yaml).",
            ),
        ] = False,
        namespace: Annotated[str, typer.Option(help="The Secret's namespace.")] = "jifen",
    ) -> None:
        """Make the keys a deployment needs, once: the token signing key, the audit checkpoint
        signing key and the metrics scrape credential. Keys already there are kept (run it again
        safely); modes are set for the service user: private keys and the credential 0600 in 0700
        folders, public keys readable. The folder is marked provisioned: a service using it will
        not start without any of its keys (rather than make one of its own)."""
        import os

        from jifen.kernel.metrics import ensure_scrape_token

        uid = gid = -1
        if owner:
            try:
                u, _, g = owner.partition(":")
                uid, gid = int(u), int(g or u)
            except ValueError:
                typer.echo(f"--owner wants UID:GID in numbers, got {owner!r}", err=True)
                raise typer.Exit(2) from None
        made: list[str] = []
        for what, d in (
            ("token signing key 令牌签名密钥", keys_dir),
            ("audit checkpoint key 审计检查点密钥", keys_dir / AUDIT_KEYS_SUBDIR),
        ):
            existed = (d / "current").exists()
            kid = ensure_signing_key(d)
            made.append(f"{'已有 kept' if existed else '已生成 made'} {what}: {kid}")
        token_existed = (keys_dir / "metrics-scrape-token").exists()
        token_file = ensure_scrape_token(keys_dir)
        made.append(
            f"{'已有 kept' if token_existed else '已生成 made'} metrics scrape credential "
            f"抓取凭据: {token_file}"
        )
        # from now on a service using this dir refuses to start without any of these keys
        (keys_dir / PROVISIONED_MARK).write_text(
            "made by `jifen keys init`: a service missing a key of this folder does not start\n"
        )
        for root_dir, _dirs, files in os.walk(keys_dir):
            here = Path(root_dir)
            private = here.name == "signing"
            os.chmod(here, 0o700 if private or here == keys_dir else 0o755)
            for f in files:
                path = here / f
                secret = private or f == token_file.name
                os.chmod(path, 0o600 if secret else 0o644)
                if owner:
                    os.chown(path, uid, gid)
            if owner:
                os.chown(here, uid, gid)
        for line in made:
            typer.echo(line, err=k8s_secret)
        if owner:
            typer.echo(f"owner 属主 {uid}:{gid}, in {keys_dir}", err=k8s_secret)
        if k8s_secret:
            typer.echo(_secret_manifest("jifen-keys", namespace, _keys_files(keys_dir)), nl=False)

    return root


def _keys_files(keys_dir: Path) -> dict[str, Path]:
    """Every file of a keys dir by its flat name (a Kubernetes Secret's keys cannot hold '/'):
    signing--<kid>.pem, public--<kid>.pem, current; the same under audit-- for the checkpoint
    keys; metrics-scrape-token. The init containers in deploy/k8s rebuild the dir from these."""
    from jifen.kernel.auth import AUDIT_KEYS_SUBDIR, PROVISIONED_MARK
    from jifen.kernel.metrics import SCRAPE_TOKEN_FILE

    files: dict[str, Path] = {}
    for prefix, d in (("", keys_dir), (f"{AUDIT_KEYS_SUBDIR}--", keys_dir / AUDIT_KEYS_SUBDIR)):
        files[f"{prefix}current"] = d / "current"
        for part in ("signing", "public"):
            for pem in sorted((d / part).glob("*.pem")):
                files[f"{prefix}{part}--{pem.name}"] = pem
    files[SCRAPE_TOKEN_FILE] = keys_dir / SCRAPE_TOKEN_FILE
    files[PROVISIONED_MARK] = keys_dir / PROVISIONED_MARK
    return files


def _secret_manifest(name: str, namespace: str, files: dict[str, Path]) -> str:
    import base64

    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {namespace}",
        "type: Opaque",
        "data:",
    ]
    for key, path in files.items():
        lines.append(f"  {key}: {base64.b64encode(path.read_bytes()).decode()}")
    return "\n".join(lines) + "\n"


def _plugins() -> list["EntryPoint"]:
    from importlib.metadata import entry_points

    return list(entry_points(group="jifen.cli"))


def _add(root: "typer.Typer", ep: "EntryPoint") -> None:
    import typer

    plugin = ep.load()
    if isinstance(plugin, typer.Typer):
        root.add_typer(plugin, name=ep.name)
    else:
        root.command(ep.name)(plugin)


def _load_plugins(root: "typer.Typer") -> None:
    """Services and the dev tools add their own commands through the ``jifen.cli`` entry-point
    group (a ``typer.Typer`` becomes a group, e.g. ``jifen audit``; a function a command, e.g.
    ``jifen demo``), so the kernel never imports a service or the dev tools."""
    for ep in _plugins():
        _add(root, ep)


def _app_for(argv: list[str]) -> "typer.Typer":
    """The command ``argv`` invokes, built with only what it needs: a plugin's group on its
    own (``jifen audit …``), else the whole command (kernel groups and every plugin, as
    ``jifen --help`` lists them)."""
    import typer

    name = argv[1] if len(argv) > 1 else ""
    if name and not name.startswith("-") and name not in ("token", "keys"):
        for ep in _plugins():
            if ep.name == name:
                plugin = ep.load()
                if isinstance(plugin, typer.Typer):  # a group: no need of the others
                    root = _root()
                    root.add_typer(plugin, name=ep.name)
                    return root
                break
    root = _kernel_app()
    _load_plugins(root)
    return root


def __getattr__(name: str) -> Any:
    # ``app``: the kernel's groups (``from jifen.kernel.cli import app`` in tests); built once
    if name == "app":
        built = globals()["app"] = _kernel_app()
        return built
    if name == "KeysDir":  # for the dev tools' commands
        kind = globals()["KeysDir"] = _keys_dir_type()
        return kind
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _direct(argv: list[str]) -> int | None:
    """A plugin group's module may answer some of its command lines itself, without typer
    (whose start-up builds a pydantic adapter per option, ~0.7 s): its ``direct(args)`` returns
    the exit status, or None for typer to run the command (``--help``, a mistyped option, …).
    Only the plugin's module is imported, not the group (``jifen audit verify`` uses this)."""
    import importlib

    name = argv[1] if len(argv) > 1 else ""
    if not name or name.startswith("-") or name in ("token", "keys"):
        return None
    for ep in _plugins():
        if ep.name == name:
            direct = getattr(importlib.import_module(ep.module), "direct", None)
            return direct(argv[2:]) if callable(direct) else None
    return None


def main() -> None:
    code = _direct(sys.argv)
    if code is not None:
        sys.exit(code)
    _app_for(sys.argv)()


if __name__ == "__main__":
    main()
