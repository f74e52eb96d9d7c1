"""SQL only with parameters, and no shell built from input: no query text in lib/ or
services/ is assembled at run time (f-string, concatenation, % or .format) and nothing runs
a shell."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
# statements that cannot take parameters (DDL naming a database or role chosen by the
# operator, never by a request), reviewed one by one
ALLOWED = {
    # the name is checked against ^[a-z_][a-z0-9_]*$ first and comes from settings
    ("lib/src/jifen/kernel/db.py", "CREATE DATABASE"),
}


def _sources() -> list[Path]:
    return sorted(p for d in ("lib/src", "services") for p in (ROOT / d).rglob("*.py"))


def _is_built(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def test_no_query_is_built_from_strings_at_run_time() -> None:
    found = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
                and node.args
                and _is_built(node.args[0])
            ):
                text = ast.unparse(node.args[0])
                if not any(rel == f and stmt in text for f, stmt in ALLOWED):
                    found.append(f"{rel}:{node.lineno}: {text[:80]}")
    assert not found, "queries built at run time:\n" + "\n".join(found)


def test_nothing_runs_a_shell() -> None:
    found = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            shell = any(
                k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                for k in node.keywords
            )
            if shell or name in ("os.system", "os.popen", "subprocess.getoutput"):
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, "shell commands:\n" + "\n".join(found)
