"""ASGI middleware: security headers, a request body cap, and client addresses from trusted
proxies only (pure ASGI, so streams stay streams)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
        b"form-action 'self'",
    ),
]

# The API docs pages (Swagger UI, its OAuth2 redirect, ReDoc) start themselves with inline
# script, so they alone go without the policy. Matched exactly: a prefix would also exempt any
# other address that begins like them (a dead link's page, a page added later).
_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# Files the same for everyone, which browsers may keep. Every other answer is someone's own
# (their code, their learners' names, a form's CSRF token, a reset link's token) and is kept
# by no cache: on a shared computer (a school's lab) the next person's Back button or a proxy
# would show it after its owner logged out.
_SHARED_FILES = ("/static/", "/api-docs-assets/")
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        is_docs = path in _DOCS_PATHS
        shared = path.startswith(_SHARED_FILES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name in present or (is_docs and name == b"content-security-policy"):
                        continue
                    headers.append((name, value))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                if not shared and b"cache-control" not in present:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Uvicorn's default HTTP parser (httptools) accepts headers of any size, so the app refuses
# oversized ones itself; browsers send a few KB, and nginx's defaults stop at 4 x 8 KB.
MAX_HEADER_BYTES = 32 * 1024
MAX_QUERY_BYTES = 8 * 1024
# The deepest JSON a request may nest. Koan's bodies nest a few levels; parsing one nested to
# near the interpreter's recursion limit runs whatever else happens meanwhile (a collection's
# finalizers) at that depth. A body with fewer openers than this cannot nest past it, so only
# one with more is scanned.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `body` nests arrays and objects deeper than `limit` (brackets inside strings
    do not count), without parsing it."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", body)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not Content-Length is sent;
    headers over `max_header_bytes` (431) and query strings over `max_query_bytes` (414); and a
    JSON body nested past MAX_JSON_DEPTH (400 MalformedJSON) before anything parses it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_query_bytes: int = MAX_QUERY_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        page = wants_page(scope)
        if sum(len(name) + len(value) + 4 for name, value in headers) > self.max_header_bytes:
            await _refuse(send, 431, "HeadersTooLarge", "The request headers are too large.", page)
            return
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            await _refuse(send, 414, "URITooLong", "The query string is too long.", page)
            return
        is_json = any(name == b"content-type" and b"json" in value for name, value in headers)
        chunks: list[bytes] = []
        for name, value in headers:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send, page)
                    return
        received = 0
        response_started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if response_started:
                        raise _TooLarge
                    # Answer 413 here: an exception would be caught by FastAPI's body parsing
                    # and turned into a 400. The app then sees the client gone.
                    refused = True
                    await self._reject(send, page)
                    return {"type": "http.disconnect"}
                if is_json:
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False) and json_too_deep(b"".join(chunks)):
                        refused = True
                        detail = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels."
                        await _refuse(send, 400, "MalformedJSON", detail)
                        return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 is already sent; whatever the app answers is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(send, page)

    async def _reject(self, send: Send, page: bool) -> None:
        detail = f"The request body is larger than {self.max_bytes} bytes."
        await _refuse(send, 413, "PayloadTooLarge", detail, page)


# Addresses that only programs call: they keep the JSON error body even from a browser.
MACHINE_PREFIXES = (
    "/api/",
    "/health/",
    "/metrics",
    "/static/",
    "/openapi.json",
    "/api-docs-assets/",
)


def wants_page(scope: Scope) -> bool:
    """A browser's navigation or form (it asks for HTML) to an address outside the programs'
    ones: what the layers around the pages refuse or fail it with is a page, as the pages
    answer every other error, not the API's JSON body."""
    if str(scope.get("path", "")).startswith(MACHINE_PREFIXES):
        return False
    headers: Sequence[tuple[bytes, bytes]] = scope.get("headers", [])
    return any(name == b"accept" and b"text/html" in value for name, value in headers)


# What a browser is shown instead of the JSON body: no stack, no framework's words.
_PAGE_WORDS = {
    413: ("Too large", "What you sent is more than Koan takes at once. Go back, send less "
          "(a smaller file, a shorter text), and try again."),
    414: ("Address too long", "This address is longer than Koan reads. Go back and try again "
          "with a shorter one."),
    431: ("Too large", "Your browser sent more than Koan reads with a request. Clearing this "
          "site's cookies and logging in again mends it."),
    500: ("Something went wrong", "Something went wrong on our side; it has been logged. "
          "Please try again."),
    503: ("Temporarily unavailable", "Koan cannot answer just now. Please try again in a few "
          "seconds."),
}  # fmt: skip


def error_page(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """The page a browser is shown for an error answered outside the pages (500, 503)."""
    return Response(_page(status), status, headers, media_type="text/html; charset=utf-8")


def _page(status: int) -> bytes:
    title, message = _PAGE_WORDS[status]
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} · Koan</title>\n"
        '<link rel="stylesheet" href="/static/css/koan.css">\n</head>\n<body>\n'
        f'<main id="main" class="wrap">\n<h1>{title}</h1>\n<p>{message}</p>\n'
        '<p><a href="/">Koan</a></p>\n</main>\n</body>\n</html>\n'
    ).encode()


async def _refuse(send: Send, status: int, code: str, detail: str, page: bool = False) -> None:
    if page:
        body, kind = _page(status), b"text/html; charset=utf-8"
    else:
        body, kind = json.dumps({"error": code, "detail": detail}).encode(), b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class TrustedProxies:
    """Take the client's address (and scheme) from `X-Forwarded-For` / `X-Forwarded-Proto`, but
    only on connections from the configured proxies: anyone else could name any address and
    slip past the per-address limits. With no proxies configured, the headers are ignored."""

    def __init__(self, app: ASGIApp, *, proxies: Sequence[IPv4Network | IPv6Network]) -> None:
        self.app = app
        self.proxies = list(proxies)

    def _trusted(self, host: str) -> bool:
        try:
            address = ip_address(host.strip())
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (
            self.proxies
            and scope["type"] in ("http", "websocket")
            and client
            and self._trusted(client[0])
        ):
            scope = dict(scope)
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
            hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
            # Right to left: each trusted proxy vouches for the hop before it; the first hop
            # no trusted proxy sent is the client.
            host = client[0]
            for hop in reversed(hops):
                host = hop
                if not self._trusted(hop):
                    break
            scope["client"] = (host, 0)
            protos = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
            proto = protos[-1].split(",")[-1].strip().lower() if protos else ""
            if proto in ("http", "https"):
                secure = proto == "https"
                if scope["type"] == "http":
                    scope["scheme"] = proto
                else:
                    scope["scheme"] = "wss" if secure else "ws"
        await self.app(scope, receive, send)


class HeadAsGet:
    """Answer HEAD on a path under one of `prefixes` as GET, without the body: FastAPI's routes
    answer only the methods they declare (the API's, the health probes that load balancers
    and uptime monitors often call with HEAD), where pages answer HEAD too.

    The app below sees a GET (its routing, authentication, rate limits, turns), so a HEAD
    costs and is allowed exactly what the GET is; the status and headers, Content-Length
    included, are the GET's. The server is given back an empty body. Only on a copy of the
    scope: the server's own still says HEAD, so it does not expect the body Content-Length
    announces; what routing records in it is handed back to the server's."""

    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = tuple(prefix.rstrip("/") + "/" for prefix in prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "HEAD"
            or not str(scope.get("path", "")).startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {
                    "type": "http.response.body",
                    "body": b"",
                    "more_body": bool(message.get("more_body", False)),
                }
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, send_without_body)
        finally:
            # What routing recorded (the matched route, for the request log's template).
            scope.update((key, value) for key, value in inner.items() if key != "method")
