"""``jifen audit``: verify an export offline, fetch one, witness checkpoints, reconcile the
ledger with tasks and redeem, and write the HTML report (docs/AUDIT.md).

Each command imports what it needs when it runs (httpx, asyncio, the report's charts), so
``jifen audit verify`` starts with the verifier alone."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from jifen.points.audit.cli import _fail, one_line_errors, run_verify

app = typer.Typer(
    help="Union integrity audits of the points ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Keys = Annotated[
    Path,
    typer.Option(
        "--keys",
        help="The operator's public keys: the JSON of GET /v1/audit/keys, or a folder of PEMs.",
    ),
]
Checkpoints = Annotated[
    Path | None,
    typer.Option(help="Folder of the checkpoints you kept; a clean run adds the new one."),
]
State = Annotated[
    Path | None,
    typer.Option(help="Folder keeping the leaf hashes you verified, to name changed entries."),
]


class FetchProgress:
    """Bytes and entries on stderr: redrawn in place on a terminal, a line every few
    seconds (and at the end) otherwise."""

    def __init__(self, every: float = 5.0) -> None:
        self.tty = sys.stderr.isatty()
        self.every = every if not self.tty else 0.2
        self.last = 0.0
        self.text = ""

    def __call__(self, done: int, entries: int, expected: int | None) -> None:
        now = time.monotonic()
        of = f" / {expected:,}" if expected is not None else ""
        pct = f" ({100 * entries / expected:.0f}%)" if expected else ""
        self.text = f"下载 fetching: {done / 1e6:,.1f} MB, {entries:,}{of} entries{pct}"
        if now - self.last >= self.every:
            self.last = now
            self._show()

    def _show(self) -> None:
        end = "\r" if self.tty else "\n"
        sys.stderr.write(self.text + end)
        sys.stderr.flush()

    def close(self) -> None:
        if self.text:
            self.last = 0.0
            self.tty = False
            self._show()


Url = Annotated[str, typer.Option(envvar="JIFEN_POINTS_URL", help="The points service.")]
Token = Annotated[str, typer.Option(envvar="JIFEN_AUDIT_TOKEN", help="An auditor's token.")]


@app.command()
def verify(
    export: Annotated[list[Path], typer.Argument(help="Export file(s), in position order.")],
    keys: Keys,
    checkpoints: Checkpoints = None,
    state: State = None,
    json_out: Annotated[bool, typer.Option("--json", help="Findings as JSON lines.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    jobs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes to split one large export over (0: one per CPU; 1: no split). "
            "Any finding and it is verified again in one, so the report is the same.",
        ),
    ] = 0,
) -> None:
    """Recompute every hash, chain, balance and the tree; check signatures and your saved
    checkpoints. Exits 1 with the list of findings if anything is wrong."""
    raise typer.Exit(run_verify(export, keys, checkpoints, state, json_out, progress, jobs))


@app.command()
def fetch(
    out: Annotated[Path, typer.Option(help="Where to write the export (NDJSON).")],
    url: Url,
    token: Token,
    keys_out: Annotated[Path | None, typer.Option(help="Also save the public keys here.")] = None,
    tree_size: Annotated[int | None, typer.Option(help="Checkpoint size; default latest.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted fetch from OUT.part.")
    ] = True,
) -> None:
    """Download an export (and the public keys) from the audit API: progress on stderr,
    written to OUT.part and renamed to OUT when complete; run it again to resume."""
    import asyncio

    from jifen.points.audit.client import fetch_export

    part = out.with_name(out.name + ".part")
    if resume and part.exists():
        typer.echo(f"续传 resuming {part}", err=True)
    bar = FetchProgress()
    try:
        with one_line_errors(url):
            n = asyncio.run(
                fetch_export(url, token, out, keys_out, tree_size, on_progress=bar, resume=resume)
            )
    finally:
        bar.close()
    typer.echo(f"wrote {n} lines to {out}")


@app.command()
def witness(
    url: Url,
    token: Token,
    name: Annotated[str, typer.Option(help="The witness's name (your union).")],
    key: Annotated[Path, typer.Option(help="Your Ed25519 private key (PEM; made if missing).")],
    state: Annotated[Path, typer.Option(help="Folder keeping the checkpoint you last cosigned.")],
    keys: Annotated[
        Path | None, typer.Option(help="Pinned operator public keys (default: fetch them).")
    ] = None,
) -> None:
    """Cosign the newest checkpoint if, and only if, it is consistent with the last one you
    cosigned. Exits 1 and cosigns nothing otherwise."""
    import asyncio

    from jifen.points.audit.witness import run_witness

    with one_line_errors(url):
        verdict = asyncio.run(run_witness(url, token, name, key, state, keys))
    typer.echo(verdict.message)
    raise typer.Exit(0 if verdict.ok else 1)


@app.command()
def reconcile(
    points_url: Url,
    tasks_url: Annotated[str, typer.Option(envvar="JIFEN_TASKS_URL")],
    redeem_url: Annotated[str, typer.Option(envvar="JIFEN_REDEEM_URL")],
    token: Token,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    settle: Annotated[
        float, typer.Option(help="Seconds an entry may still be in flight before it is missing.")
    ] = 60.0,
) -> None:
    """Match tasks' completions and redeem's redemptions against the ledger; list mismatches."""
    import asyncio

    from jifen.points.audit.client import run_reconcile

    with one_line_errors(f"{points_url}, {tasks_url} or {redeem_url}"):
        mismatches = asyncio.run(
            run_reconcile(points_url, tasks_url, redeem_url, token, settle_seconds=settle)
        )
    for m in mismatches:
        typer.echo(json.dumps(m.to_json()) if json_out else str(m))
    typer.echo(f"{len(mismatches)} mismatches", err=True)
    raise typer.Exit(0 if not mismatches else 1)


@app.command()
def report(
    export: Annotated[list[Path], typer.Argument(help="Export file(s).")],
    keys: Keys,
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
    checkpoints: Checkpoints = None,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="JIFEN_POINTS_URL",
            help="The points service: include its live integrity signals (GET /v1/signals).",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="JIFEN_AUDIT_TOKEN", help="An auditor's token.")
    ] = None,
) -> None:
    """Write a self-contained HTML report (charts inline, opens offline), in Chinese and
    English. With --url (and --token) it shows the points service's integrity signals too.
    Exits 1 when the verification has findings (the report is written all the same)."""
    from jifen.points.audit.offline import load_keys
    from jifen.points.audit.report import write_report

    signals = None
    if url:
        import asyncio

        from jifen.points.audit.client import fetch_signals

        if not token:
            raise _fail("缺少令牌 --url needs --token (or JIFEN_AUDIT_TOKEN): an auditor's token")
        with one_line_errors(url):
            signals = asyncio.run(fetch_signals(url, token))
    with one_line_errors():
        ok = write_report(export, load_keys(keys), checkpoints, out, signals)
    typer.echo(f"wrote {out} ({'verified' if ok else 'FINDINGS: see the report'})")
    raise typer.Exit(0 if ok else 1)


@app.command("rotate-key")
def rotate_key(
    keys_dir: Annotated[
        Path, typer.Option(envvar="JIFEN_KEYS_DIR", help="The stack's keys folder.")
    ] = Path("var/keys"),
) -> None:
    """(Operator) Make a new checkpoint signing key current; old public keys stay published,
    so checkpoints signed before still verify."""
    from jifen.points.audit.keys import rotate

    typer.echo(f"new checkpoint signing key {rotate(keys_dir)}")


def main() -> None:  # pragma: no cover - `python -m jifen.points.audit.cli_typer`
    app()
    sys.exit(0)
