"""A fast lane: a hot route answered without FastAPI's general request path.

A redemption or a completion POST spent about a sixth of its CPU in FastAPI's dependency
solving and as much again in validating the returned model a second time and encoding it
through ``jsonable_encoder`` (issue 18, the profile in docs/BENCH.md). A lane answers the
same method and path first, with plain code: the bearer token admitted by the same check
(:func:`jifen.kernel.auth.admit`), the body as :class:`jifen.kernel.web._Observe` already
parsed it, validated by the same pydantic model, the answer encoded by pydantic at once.

The declared FastAPI route stays: it is the OpenAPI document's, the metrics' template, and
the answer to anything the lane does not take — the lane's endpoint returns None (a header
or body it would refuse, say) and the request goes on to the declared route, which gives the
usual refusal, word for word. An exception the lane's endpoint raises (a 401, a domain
refusal, the database gone) is answered by the app's exception handlers, as a route's is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from jifen.kernel.i18n import Said
from jifen.kernel.web import PARSED_BODY

LaneEndpoint = Callable[[Request], Awaitable[Response | None]]

JSON = "application/json"

# what an Idempotency-Key may hold, 8 to 128 of them: the services' IdempotencyKey headers
# declare this pattern, and a lane checks it with idempotency_key()
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]+")


class _Lane(BaseRoute):
    def __init__(self, router: ASGIApp, method: str, path: str, endpoint: LaneEndpoint) -> None:
        self.router = router
        self.path = path  # the declared route's template: the metrics and the access log read it
        self.method = method
        self.endpoint = endpoint
        # the template's parameters as the router reads them (strings: the endpoint validates)
        self._regex, _, self._convertors = compile_path(path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] == self.method and _PASSED not in scope:
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            found = self._regex.match(path)
            if found is not None:
                params = {k: self._convertors[k].convert(v) for k, v in found.groupdict().items()}
                return Match.FULL, {"route": self, "path_params": params}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # reverse lookups find the declared route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self.endpoint(Request(scope, receive))
        if answer is None:
            # on to the declared route: the router again, past this lane
            scope[_PASSED] = True
            del scope["route"]
            await self.router(scope, receive, send)
        else:
            await answer(scope, receive, send)


# set on a request a lane passed on to the declared route
_PASSED = "jifen.lane.passed"


def _declared(routes: Any, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every API route with its whole path (FastAPI >= 0.165 keeps included routers apart)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r
        elif hasattr(r, "original_router"):
            ctx = getattr(r, "include_context", None)
            yield from _declared(
                r.original_router.routes, prefix + (getattr(ctx, "prefix", "") or "")
            )


def add_lane(app: FastAPI, method: str, path: str, endpoint: LaneEndpoint) -> None:
    """Answer ``method path`` by ``endpoint`` ahead of the declared route (which must exist:
    call this after the routers are included)."""
    declared = [
        r for p, r in _declared(app.router.routes) if p == path and method in (r.methods or ())
    ]
    if len(declared) != 1:
        raise LookupError(
            Said(
                f"快车道 {method} {path} 前面没有唯一的已声明路由",
                f"no single declared route {method} {path} to put a lane before",
            )
        )
    app.router.routes.insert(0, _Lane(app.router, method, path, endpoint))


def json_body(request: Request) -> Any:
    """The request's JSON as :class:`jifen.kernel.web._Observe` parsed and checked it, or None:
    not parsed there, or sent as another media type than JSON (which FastAPI would not read
    as JSON: the declared route says so)."""
    parsed = request.scope.get(PARSED_BODY)
    if parsed is None:
        return None
    media = (request.headers.get("content-type") or JSON).partition(";")[0].strip().lower()
    return parsed[1] if media == JSON else None


def answer(model: BaseModel, status_code: int) -> Response:
    """``model`` as the declared route's JSON answer (same fields, aliases and order)."""
    return Response(model.model_dump_json(by_alias=True), status_code, media_type=JSON)


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key if the declared header would take it, else None."""
    key = request.headers.get("idempotency-key")
    if key is None or not 8 <= len(key) <= 128 or not IDEMPOTENCY_KEY.fullmatch(key):
        return None
    return key
