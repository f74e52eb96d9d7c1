"""``jifen audit`` (the ``jifen.cli`` entry point ``jifen.points.audit.cli:app``). The typer
commands are in ``cli_typer``, imported on first use of ``app``; this module imports neither
typer nor rich at start, and answers the plain command lines of ``jifen audit verify`` itself
(``direct``): typer's start-up (it builds a pydantic adapter per option) took longer than
checking a hundred thousand entries. Anything else (``--help``, a mistyped or missing option)
goes to typer, which says what is wrong as before."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from jifen.points.audit.domain.verify import Result


def __getattr__(name: str) -> Any:
    if name == "app":
        from jifen.points.audit.cli_typer import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def direct(args: list[str]) -> int | None:
    """``jifen audit ARGS`` without typer: the exit status of a ``verify`` whose every
    argument is one the command takes, as typer would parse it; None for any other command
    line (typer runs it)."""
    if not args or args[0] != "verify":
        return None
    exports: list[Path] = []
    paths: dict[str, Path | None] = {"--keys": None, "--checkpoints": None, "--state": None}
    json_out, progress, jobs = False, True, 0
    rest = iter(args[1:])
    for arg in rest:
        if arg in paths:
            value = next(rest, None)
            if value is None:
                return None
            paths[arg] = Path(value)
        elif arg == "--jobs":
            value = next(rest, None)
            if value is None or not value.isdigit():
                return None
            jobs = int(value)
        elif arg == "--json":
            json_out = True
        elif arg in ("--progress", "--no-progress"):
            progress = arg == "--progress"
        elif arg.startswith("-"):
            return None
        else:
            exports.append(Path(arg))
    keys = paths["--keys"]
    if not exports or keys is None:
        return None
    try:
        return run_verify(
            exports, keys, paths["--checkpoints"], paths["--state"], json_out, progress, jobs
        )
    except SystemExit as exc:  # an error said in one line
        return exc.code if isinstance(exc.code, int) else 2


def run_verify(
    export: list[Path],
    keys: Path,
    checkpoints: Path | None,
    state: Path | None,
    json_out: bool,
    progress: bool,
    jobs: int,
) -> int:
    """``jifen audit verify``: the findings on stdout, the exit status (0 clean, 1 findings;
    an error raises SystemExit(2) after its one line)."""
    from rich.console import Console

    console = Console(stderr=True)
    with one_line_errors():
        result = _verify(export, keys, checkpoints, state, progress, console, jobs)
    _print_result(result, json_out)
    return 0 if result.ok else 1


def _fail(message: str) -> SystemExit:
    """The one line on stderr; raise what it returns (exit 2)."""
    print(f"jifen audit: {message}", file=sys.stderr, flush=True)
    return SystemExit(2)


@contextmanager
def one_line_errors(url: str | None = None) -> Iterator[None]:
    """Every error a union can meet, as one line that says what to do, exit 2 (findings
    are exit 1): a missing file, a file that is not an export, a refused token, a service
    that cannot be reached."""
    from jifen.points.audit.offline import AuditError

    try:
        yield
    except AuditError as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"找不到文件 no such file: {exc.filename}; check the path") from None
    except IsADirectoryError as exc:
        raise _fail(f"是目录 {exc.filename} is a folder; give the file") from None
    except PermissionError as exc:
        raise _fail(f"无权限 cannot open {exc.filename}: permission denied") from None
    except Exception as exc:
        # httpx only when a command used it (an offline verify never imports it)
        httpx = sys.modules.get("httpx")
        if httpx is None or not isinstance(exc, httpx.HTTPError):
            raise
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            raise _fail(
                f"连不上服务 cannot reach the points service at {url} ({type(exc).__name__}): "
                "is it running? Set --url or JIFEN_POINTS_URL to its address"
            ) from None
        if isinstance(exc, httpx.TimeoutException):
            raise _fail(
                f"服务超时 the points service at {url} did not answer in time "
                f"({type(exc).__name__}); try again"
            ) from None
        raise _fail(f"网络错误 talking to {url} failed ({type(exc).__name__}: {exc})") from None


def _verify(
    export: list[Path],
    keys: Path,
    checkpoints: Path | None,
    state: Path | None,
    progress: bool,
    console: Console,
    jobs: int = 0,
) -> Result:
    from jifen.points.audit.offline import default_jobs, load_keys, verify_files

    jobs = jobs or default_jobs()
    total = sum(p.stat().st_size for p in export)
    if not progress or total < 50_000_000:  # no bar to draw: rich's progress not imported
        return verify_files(export, load_keys(keys), checkpoints, state, jobs=jobs)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("verifying", total=total)
        result = verify_files(
            export,
            load_keys(keys),
            checkpoints,
            state,
            on_progress=lambda n: bar.advance(task, n),
            jobs=jobs,
        )
    return result


def _print_result(result: Result, json_out: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    out = Console()
    # one line per fault, the entry it is about first; its other evidence in "also"
    if json_out:
        for f in result.faults:
            print(json.dumps(f.to_json(), ensure_ascii=False), flush=True)
    else:
        for f in result.faults:
            out.print(f"[red]✗[/red] {escape(str(f))}", highlight=False, soft_wrap=True)
        status = "[green]OK[/green]" if result.ok else f"[red]{len(result.faults)} findings[/red]"
        cp = result.checkpoint
        out.print(
            f"{status}: {result.tree_size} positions, {result.entries_checked} entries checked, "
            f"{result.redacted} of other organisations, {len(result.accounts)} accounts"
            + (f", checkpoint {cp.tree_size} root {cp.root_hash.hex()}" if cp else ""),
            highlight=False,
            soft_wrap=True,
        )
