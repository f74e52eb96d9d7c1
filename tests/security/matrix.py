"""The permission matrix as written in docs/SECURITY.md, parsed, and the roles each endpoint's
``require(...)`` admits, read from the code: the matrix test holds the two and the running
services to each other."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "docs" / "SECURITY.md"
ROLES = ("volunteer", "officer", "app", "merchant", "auditor", "operator", "admin")
SERVICES = ("tasks", "points", "redeem")
# answered without a token: the probes, and a service certificate checked by its code (the code
# is on the paper and is 100 random bits: holding it is the only way to the certificate)
OPEN = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/certificates/{code}",
    "/v1/certificates/{code}/pdf",
}


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    cells: dict[str, str]  # role -> "✓" (allowed), "own" (allowed for own records), "—"
    other_org: str  # "404", "own org" (sees only its own organisation's data), "shared", "—"
    anonymous: str  # "401" or "open"

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(r for r, c in self.cells.items() if c in ("✓", "own"))


_ROW = re.compile(r"^\|\s*(tasks|points|redeem)\s*\|\s*`(GET|POST|PUT|PATCH|DELETE) ([^`]+)`\s*\|")


def parse_matrix(text: str | None = None) -> dict[tuple[str, str, str], Row]:
    text = text if text is not None else SECURITY_MD.read_text(encoding="utf-8")
    rows: dict[tuple[str, str, str], Row] = {}
    for line in text.splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        service, _endpoint, *role_cells, other, anon = cols
        assert len(role_cells) == len(ROLES), f"matrix row has wrong column count: {line}"
        key = (service, m.group(2), m.group(3))
        assert key not in rows, f"matrix row twice: {key}"
        rows[key] = Row(
            service, m.group(2), m.group(3), dict(zip(ROLES, role_cells, strict=True)), other, anon
        )
    return rows


def _roles_of(dependant: Any) -> set[str]:
    """The roles of every ``require(...)`` in a route's dependency tree."""
    found: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        call = d.call
        if call is not None and getattr(call, "__qualname__", "") == "require.<locals>.dependency":
            for cell in call.__closure__ or ():
                if isinstance(cell.cell_contents, frozenset):
                    found.update(r.value for r in cell.cell_contents)
        stack.extend(d.dependencies)
    return found


def _walk(routes: Any, prefix: str = "") -> Any:
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r
        elif hasattr(r, "original_router"):  # FastAPI's included router
            ctx = getattr(r, "include_context", None)
            yield from _walk(r.original_router.routes, prefix + (getattr(ctx, "prefix", "") or ""))


def roles_in_code() -> dict[tuple[str, str, str], frozenset[str]]:
    out: dict[tuple[str, str, str], frozenset[str]] = {}
    for service in SERVICES:
        app = importlib.import_module(f"jifen.{service}.api.app").build_app()
        for path, route in _walk(app.routes):
            for method in route.methods:
                out[(service, method, path)] = frozenset(_roles_of(route.dependant))
    return out


def endpoints_in_openapi() -> set[tuple[str, str, str]]:
    out = set()
    for service in SERVICES:
        spec = importlib.import_module(f"jifen.{service}.api.app").build_app().openapi()
        for path, ops in spec["paths"].items():
            for method in ops:
                if method in ("get", "post", "put", "patch", "delete"):
                    out.add((service, method.upper(), path))
    return out
