"""HTTP plumbing every service shares: health, readiness, metrics, and errors that say why.

Errors are RFC 9457 problem documents (``application/problem+json``); refusals in the domain's
words carry a machine-readable ``reason`` and the numbers involved.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jifen.kernel.db import DATABASE_UNAVAILABLE
from jifen.kernel.errors import DomainRefusal, NotFound
from jifen.kernel.i18n import (
    CONTENT_LANGUAGE,
    Lang,
    negotiate,
    rendered,
    say,
    validation_message,
    where,
)
from jifen.kernel.i18n import title as titled
from jifen.kernel.metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition
from jifen.kernel.runtime import REQUEST_ID

ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]
MAX_BODY_BYTES = 256 * 1024
PROBLEM = "application/problem+json"


class Refusal(Exception):
    """A request the domain refuses (409 unless said otherwise), with a machine-readable reason."""

    def __init__(self, reason: str, detail: str, *, status: int = 409, **facts: Any) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.facts = facts


def problem(status: int, title: str, detail: Any, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


# an X-Request-ID a caller may set (a proxy's, an app's): short, printable, no spaces; any
# other value is replaced by one of ours rather than copied into the logs
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# probes and scrapes, every few seconds: logged only at DEBUG while they succeed
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
access_log = logging.getLogger("jifen.access")


def request_id_of(header: str | None) -> str:
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class _Observe:
    """Bounds and text checks, the HTTP metrics, the request id (X-Request-ID, taken from the
    request or made, returned on the response and on every log line written meanwhile) and
    one JSON access log line a request.

    Plain ASGI, not Starlette's ``BaseHTTPMiddleware``: that one runs the app in a task of
    its own and streams its response through a memory channel, which cost about a quarter of
    a POST's CPU (issue 18)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        request_id = request_id_of(request.headers.get("x-request-id"))
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            refused, receive = await _refused_or_replay(request)
            if refused is not None:
                await refused(scope, receive, send_with_id)
                return
            inner = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", "<unmatched>")
                method = scope["method"]
                HTTP_REQUESTS.labels(self.service, template, method, str(status)).inc()
                HTTP_LATENCY.labels(self.service, template, method).observe(
                    time.perf_counter() - inner
                )
        finally:
            self._log(request, status, time.perf_counter() - start)
            REQUEST_ID.reset(token)

    def _log(self, request: Request, status: int, seconds: float) -> None:
        path = request.scope["path"]
        level = logging.DEBUG if path in _QUIET_PATHS and status < 400 else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        route = getattr(request.scope.get("route"), "path", None)
        ms = round(seconds * 1000, 2)
        access_log.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            path,
            status,
            ms,
            extra={
                "service": self.service,
                "method": request.method,
                "path": path,  # never the query string: it may hold a code or a token
                "route": route,
                "status": status,
                "duration_ms": ms,
                "client": request.client.host if request.client else None,
            },
        )


async def _refused_or_replay(request: Request) -> tuple[JSONResponse | None, Receive]:
    """The refusal of a request too large or holding unstorable text, if it is one; else the
    ``receive`` the app reads the request from (the body replayed when it was read here,
    and the body and its JSON handed to FastAPI, which then parses nothing again: see
    :class:`ParsedBodyRoute`)."""
    length = request.headers.get("content-length")
    bound = body_bound(request)
    if length is not None and length.isdigit() and int(length) > bound:
        return _too_large(request, length, bound), request.receive
    refused = await _unstorable_text(request, bound)
    if refused is not None or not hasattr(request, "_body"):
        return refused, request.receive
    body: bytes = request._body
    replayed = False
    receive = request.receive

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return None, replay


def localized(
    request: Request, status: int, detail: Any, *, title: str | None = None, **extra: Any
) -> JSONResponse:
    """A problem document whose title is in the caller's language (``Accept-Language``; both
    when it names neither, Chinese first); ``title`` is the English one (the status's phrase
    if None), ``detail`` in that language too when it was said in both (a ``Said``), else as
    given."""
    lang = _lang(request)
    english = title or _title(status)
    return _in(
        lang, problem(status, titled(lang, status, english), rendered(lang, detail), **extra)
    )


def said(
    request: Request, status: int, zh: str, en: str, *, title: str | None = None, **extra: Any
) -> JSONResponse:
    """:func:`localized` with the detail in the caller's language too."""
    return localized(request, status, say(_lang(request), zh, en), title=title, **extra)


def _too_large(request: Request, size: object, bound: int) -> JSONResponse:
    return said(
        request,
        413,
        f"请求体 {size} 字节，超过上限 {bound}",
        f"body of {size} bytes exceeds {bound}",
        title="Payload Too Large",
    )


def _unstorable(request: Request, found: tuple[str, str]) -> JSONResponse:
    return said(request, 422, *found, title="Unprocessable Content")


def _bad_text(value: Any, at: str) -> tuple[str, str] | None:
    """Where a decoded JSON value holds text PostgreSQL cannot store (NUL) or that is not
    Unicode at all (a lone surrogate from a ``\\ud800`` escape), in Chinese and English;
    None when it is all fine."""
    if isinstance(value, str):
        if "\x00" in value:
            return (
                f"{at}：文本不能含 NUL 字符（U+0000）",
                f"{at}: text may not contain NUL (U+0000)",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (
                f"{at}：不是合法的 Unicode（孤立的代理项转义）",
                f"{at}: not valid Unicode (a lone surrogate escape)",
            )
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _bad_text(k, f"{at}.{k}") or _bad_text(v, f"{at}.{k}")
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _bad_text(v, f"{at}.{i}")
            if found:
                return found
    return None


BODY_BOUND_KEY = "x-max-body-bytes"


def max_body(n: int) -> dict[str, Any]:
    """``openapi_extra`` for a route whose bodies are smaller than the global bound:
    ``@router.post(..., openapi_extra=max_body(4096))``; shown in the OpenAPI document."""
    return {BODY_BOUND_KEY: n}


def body_bound(request: Request) -> int:
    """The body bound of the endpoint a request is for: its ``max_body`` or MAX_BODY_BYTES."""
    bounds: list[tuple[Any, frozenset[str], int]] | None = getattr(
        request.app.state, "body_bounds", None
    )
    if bounds is None:
        bounds = request.app.state.body_bounds = list(_declared_bounds(request.app.routes))
    path = request.scope["path"]  # what the router matches (request.url builds a whole URL)
    for regex, methods, n in bounds:
        if request.method in methods and regex.match(path):
            return n
    return MAX_BODY_BYTES


def _declared_bounds(routes: Any, prefix: str = "") -> Any:
    from fastapi.routing import APIRoute
    from starlette.routing import compile_path

    for r in routes:
        if isinstance(r, APIRoute):
            n = (r.openapi_extra or {}).get(BODY_BOUND_KEY)
            if n is not None:
                yield (
                    compile_path(prefix + r.path)[0],
                    frozenset(r.methods or ()),
                    min(int(n), MAX_BODY_BYTES),
                )
        elif hasattr(r, "original_router"):  # an included router (FastAPI >= 0.165)
            ctx = getattr(r, "include_context", None)
            yield from _declared_bounds(
                r.original_router.routes, prefix + (getattr(ctx, "prefix", "") or "")
            )


async def _unstorable_text(request: Request, bound: int) -> JSONResponse | None:
    """Refuse (413/422) a body over the bound even when sent without Content-Length, and NUL
    or lone surrogates in the body, query or path: they would reach the database driver and
    come back as a 500 instead of saying what was wrong."""
    query = request.query_params.multi_items() if request.scope.get("query_string") else []
    for name, value in [("path", request.scope["path"]), *query]:
        found = _bad_text(value, "path" if name == "path" else f"query.{name}")
        if found:
            return _unstorable(request, found)
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > bound:
        return _too_large(request, length, bound)
    body = await request.body()
    if len(body) > bound:
        return _too_large(request, len(body), bound)
    if not body:
        return None
    try:
        decoded = json.loads(body, object_pairs_hook=_refuse_duplicate_keys)
        request.scope[PARSED_BODY] = (body, decoded)
    except _DuplicateKey as dup:
        return said(
            request,
            422,
            f"JSON 对象中键 {dup.key!r} 重复：每个字段只写一次（以哪个为准不该由服务器猜）",
            f"duplicate key {dup.key!r} in a JSON object: say each field once "
            "(which one would count is not for the server to guess)",
            title="Unprocessable Content",
            reason="duplicate_key",
        )
    except (ValueError, RecursionError):
        return None  # malformed or too deeply nested: FastAPI's parser says so (422/400)
    if b"\\u" not in body and b"\x00" not in body:
        return None  # no escapes: the JSON decoder itself rejects raw NUL and bad UTF-8
    found = _bad_text(decoded, "body")
    return _unstorable(request, found) if found else None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a JSON object naming a key twice is refused, never "last wins"
    (two parsers in a chain could each see a different value). The first key named twice is
    the one reported."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


# where _Observe leaves (body, its JSON) once it has parsed and checked them
PARSED_BODY = "jifen.parsed_body"


class ParsedBodyRoute(APIRoute):
    """A route that takes the body and its JSON as :class:`_Observe` parsed them (with the
    duplicate-key check), so FastAPI does not read and parse the body a second time:
    ``APIRouter(..., route_class=ParsedBodyRoute)``. The same values FastAPI would have
    made: ``json.loads`` of the same bytes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parsed_once(request: Request) -> Response:
            parsed = request.scope.get(PARSED_BODY)
            if parsed is not None:
                request._body, request._json = parsed
            return await handler(request)

        return parsed_once


# DATABASE_UNAVAILABLE without the whole of OSError (a file error is not an outage)
_API_DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    ConnectionError,
    *(e for e in DATABASE_UNAVAILABLE if e is not OSError and issubclass(e, Exception)),
)


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # served below from the package's own copies, never from a CDN
        redoc_url=None,
    )
    _self_hosted_docs(app)
    app.state.ready_checks = {}
    app.state.service = service  # runtime.serve checks this process's keys before it starts
    app.add_middleware(_Observe, service=service)

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> JSONResponse:
        return localized(
            request, exc.status, exc.detail, title="Refused", reason=exc.reason, **exc.facts
        )

    @app.exception_handler(DomainRefusal)
    async def _domain_refusal(request: Request, exc: DomainRefusal) -> JSONResponse:
        facts = {("current_status" if k == "status" else k): v for k, v in exc.facts.items()}
        response = localized(
            request, exc.status, exc.detail, title="Refused", reason=exc.reason, **facts
        )
        if "retry_after" in exc.facts:
            response.headers["Retry-After"] = str(exc.facts["retry_after"])
        return response

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return localized(request, 404, exc.detail)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        response = localized(request, exc.status_code, exc.detail)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # routing's 404/405 and FastAPI's "error parsing the body" (bytes that are not UTF-8,
        # JSON nested too deeply for the decoder) arrive here: problem+json like the rest
        path, status, detail = request.url.path, exc.status_code, str(exc.detail)
        zh, en = {
            (400, "There was an error parsing the body"): (
                "请求体无法解析：不是 UTF-8，或 JSON 嵌套过深",
                "the body could not be parsed: not UTF-8, or JSON nested too deeply",
            ),
            (404, "Not Found"): (f"没有这个地址：{path}", f"no such path: {path}"),
            (405, "Method Not Allowed"): (
                f"{path} 不接受 {request.method}",
                f"{path} does not take {request.method}",
            ),
        }.get((status, detail), ("", detail))
        response = said(request, status, zh, en)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # pydantic's message is the English; the Chinese comes from the kernel's catalogue
        # (jifen.kernel.i18n), chosen by Accept-Language, both when none is asked for
        lang = _lang(request)
        errors, said_of = [], []
        for e in exc.errors():
            zh, en = validation_message(e)
            loc = e.get("loc", ())
            errors.append({"loc": list(loc), "msg": en, "msg_zh": zh, "type": e.get("type", "")})
            said_of.append(f"{where(loc)}: {say(lang, zh, en)}")
        return localized(
            request, 422, "; ".join(said_of), title="Unprocessable Content", errors=errors
        )

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # an outage or restart of PostgreSQL: say so with 503 and Retry-After, as a handled
        # response (a 500 from the catch-all would also make the server drop the connection)
        import logging

        logging.getLogger("jifen.web").warning(
            "database unavailable on %s %s: %r", request.method, request.url.path, exc
        )
        response = said(
            request,
            503,
            "数据库暂不可用，请稍后重试（带同一个 Idempotency-Key，已提交的写入不会重复）",
            "the database is unavailable; retry shortly (with the same Idempotency-Key, "
            "a write that did commit is not done twice)",
        )
        response.headers["Retry-After"] = "5"
        return response

    for unavailable in _API_DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # logged with its traceback by the server; the client learns only that it was ours
        import logging

        logging.getLogger("jifen.web").error(
            "unhandled error on %s %s", request.method, request.url.path, exc_info=exc
        )
        return said(request, 500, "意外错误，已记录", "an unexpected error; it has been logged")

    @app.get("/healthz", tags=["operations"], summary="Process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service, "pid": str(os.getpid())}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Dependencies are reachable",
        responses={503: {"description": "Not ready; the body says which check failed"}},
    )
    async def readyz() -> JSONResponse:
        results = {}
        ready = True
        for name, check in app.state.ready_checks.items():
            try:
                ok, detail = await check()
            except Exception as exc:  # a check that raises is a failed check, not a 500
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
            ready = ready and ok
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        body = exposition(request.headers.get("authorization"))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


DOCS_ASSETS = "/docs-assets"


def _self_hosted_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts and styles served by this process
    from the copies the ``fastapi-offline`` package ships: the pages work on a network that
    cannot reach a CDN (a community centre's, a union office's, a closed test machine)."""
    from importlib.resources import files

    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _lang(request: Request) -> Lang:
    return negotiate(request.headers.get("accept-language"))


def _in(lang: Lang, response: JSONResponse) -> JSONResponse:
    response.headers["Content-Language"] = CONTENT_LANGUAGE[lang]
    return response


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def pool_check(pool: Any) -> tuple[bool, str]:
    async with pool.acquire(timeout=2) as conn:
        await conn.fetchval("SELECT 1")
    return True, "database reachable"


async def lifespan_noop(_: FastAPI) -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def pooled(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the service's pool for as long as the block runs.

    If PostgreSQL went away meanwhile (a restart), returning the connection to the pool fails;
    the pool has already discarded the connection and what the block did stands (committed or
    not, PostgreSQL decided), so that is logged, not raised: raised after the response has been
    sent (``db_connection``), it could no longer become a 503 — the server would drop the
    client's keep-alive connection, so the client's *next* request would get no answer at all.
    An outage while acquiring is raised (nothing has been sent yet: a 503)."""
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        try:
            await pool.release(conn)
        except _API_DATABASE_UNAVAILABLE as exc:
            logging.getLogger("jifen.web").warning(
                "connection lost on its way back to the pool (%r); the answer stands", exc
            )


async def db_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """The request's connection from the service's pool, held until FastAPI closes this after
    the response has been sent. A hot route that needs the connection for one statement takes
    it with ``pooled(request.app.state.pool)`` around that statement instead, so the pool's
    connections are not held while other requests' Python runs."""
    async with pooled(request.app.state.pool) as conn:
        yield conn


# the request's pooled connection: ``async def endpoint(conn: Conn)``
Conn = Annotated[asyncpg.Connection, Depends(db_connection)]
