"""The sandbox's HTTP face: aiohttp routes that turn requests into `ApiCall`s for the state and
its `Reply`s back into responses, with latency, stalls, gateway errors and connection resets.

Routes answer under any Host (api.x.com, api.twitter.com, localhost), as the API's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import socket
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from urllib.parse import parse_qsl

from aiohttp import hdrs, web

from bulkrt.sandbox.clock import Clock
from bulkrt.sandbox.config import Endpoint, FaultKind
from bulkrt.sandbox.inspection import add_inspection_routes
from bulkrt.sandbox.oauth2 import is_form
from bulkrt.sandbox.problems import Reply
from bulkrt.sandbox.state import ApiCall, SandboxState

__all__ = ["CLOCK", "STATE", "make_app", "render"]

STATE = web.AppKey("state", SandboxState)
CLOCK = web.AppKey("clock", Clock)

_COMMON_HEADERS = {
    "api-version": "2.167",
    "cache-control": "no-cache, no-store, max-age=0",
    "content-disposition": "attachment; filename=json.json",
    "server": "tsa_sandbox",
}
_GATEWAY_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The server is temporarily unable to service your request."
    b"</p></body></html>"
)


def render(reply: Reply, started: float | None = None) -> web.Response:
    """A `Reply` as an aiohttp response, with the headers every API response carries."""
    headers = dict(_COMMON_HEADERS)
    headers["x-transaction-id"] = secrets.token_hex(8)
    if started is not None:
        headers["x-response-time"] = str(int((time.monotonic() - started) * 1000))
    headers.update(reply.headers)
    if reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    text = json.dumps(reply.body, indent=2) if reply.pretty else json.dumps(reply.body)
    headers["Content-Type"] = reply.content_type
    return web.Response(status=reply.status, body=text.encode(), headers=headers)


def _received_url(request: web.Request) -> str:
    """The URL the client called, as OAuth 1.0a signs it (honouring a reverse proxy's headers)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
    host = request.headers.get("X-Forwarded-Host", request.host)
    return f"{scheme}://{host}{request.raw_path}"


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, as a failing load balancer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _api(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        state, clock = request.app[STATE], request.app[CLOCK]
        started = time.monotonic()
        body = await request.read()
        path_user_id = request.match_info.get("id")
        identity = f"{request.method} {request.path} ".encode() + body
        fault = state.faults.decide(identity, path_user_id, endpoint)
        if state.config.latency_ms > 0:
            await asyncio.sleep(state.config.latency_ms / 1000)
        if fault is FaultKind.HOLD and not await _held(request):
            state.record(request.method, request.path, path_user_id, "dropped", fault, clock.now())
            return web.Response(status=504)  # never delivered: the client is gone
        if fault in (FaultKind.GZIP_BOMB, FaultKind.OVERSIZED):
            state.record(request.method, request.path, path_user_id, str(fault), fault, clock.now())
            return await _huge(request, fault)
        # Faults at the edge: the request never reaches the API and is not counted.
        if fault in (FaultKind.RESET, FaultKind.E502_HTML, FaultKind.E504_EMPTY):
            state.record(request.method, request.path, path_user_id, str(fault), fault, clock.now())
            if fault is FaultKind.RESET:
                _reset(request)
                return web.Response(status=502)  # never delivered: the connection is gone
            if fault is FaultKind.E502_HTML:
                return web.Response(status=502, body=_GATEWAY_PAGE, content_type="text/html")
            return web.Response(status=504)
        call = ApiCall(
            method=request.method,
            url=_received_url(request),
            endpoint=endpoint,
            headers=request.headers,
            body=body,
            path_user_id=path_user_id,
            source_tweet_id=request.match_info.get("source_tweet_id"),
        )
        now = clock.now()
        reply = state.handle(call, now, fault)
        if fault is FaultKind.PARTIAL and reply.status == 200 and reply.body is not None:
            tweet = call.source_tweet_id or path_user_id or "0"
            reply.body["errors"] = [state.problems.not_found_error(tweet)]
        if fault is FaultKind.RESET_AFTER:
            state.record(request.method, request.path, path_user_id, "reset", fault, now)
            _reset(request)
            return web.Response(status=502)  # never delivered
        state.record(request.method, request.path, path_user_id, str(reply.status), fault, now)
        if state.config.echo_secrets:
            _echo(reply, f"Authorization: {request.headers.get('Authorization', '')}")
        if fault is FaultKind.STALL:
            # The request has taken effect; only its answer is late (past the client's timeout).
            await asyncio.sleep(state.config.stall_seconds)
        return render(reply, started)

    return handler


_MIB = 1 << 20


@functools.cache
def _gzip_bomb(mebibytes: int = 1024) -> bytes:
    """A gzip body of about 1 MB that inflates to ``mebibytes`` MiB of zeros: one deflate block
    of a MiB, repeated (each is byte-aligned and refers to nothing before it)."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = block.compress(bytes(_MIB)) + block.flush(zlib.Z_SYNC_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(bytes(_MIB), crc)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (mebibytes * _MIB) & 0xFFFFFFFF)
    return header + one * mebibytes + end + trailer


async def _huge(request: web.Request, fault: FaultKind) -> web.StreamResponse:
    """A 200 too large for any client to read whole: a gzip bomb, or 64 MiB sent plainly."""
    headers = {"Content-Type": "application/json"}
    if fault is FaultKind.GZIP_BOMB:
        headers["Content-Encoding"] = "gzip"
        return web.Response(status=200, body=_gzip_bomb(), headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = 64 * _MIB
    await response.prepare(request)
    padding = b" " * _MIB
    with contextlib.suppress(ConnectionError, RuntimeError):
        for _ in range(64):
            await response.write(padding)
    return response


def _echo(reply: Reply, sent: str) -> None:
    """Put what the client sent into the error texts of ``reply`` (an echoing API or proxy)."""
    body = reply.body
    if body is None or (reply.status < 400 and "errors" not in body):
        return
    for key in ("detail", "error_description"):
        if key in body:
            body[key] = f"{body[key]} (request: {sent})"
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            error["detail"] = f"{error.get('detail', '')} (request: {sent})"


async def _form(request: web.Request) -> dict[str, str]:
    """Token-endpoint parameters, from the query string and a form body (both are used)."""
    params = dict(request.query)
    if is_form(request.headers.get("Content-Type")):
        params.update(parse_qsl((await request.read()).decode("utf-8", "replace")))
    return params


async def _held(request: web.Request) -> bool:
    """Hold a request for ``stall_seconds``; whether its client is still there to be answered."""
    await asyncio.sleep(request.app[STATE].config.stall_seconds)
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _token(request: web.Request) -> web.StreamResponse:
    """``POST /2/oauth2/token``; faults can hold, stall or reset it like the API's endpoints."""
    state, clock = request.app[STATE], request.app[CLOCK]
    params = await _form(request)
    identity = f"{request.method} {request.path} {sorted(params.items())}".encode()
    fault = state.faults.decide(identity, None, Endpoint.OAUTH2_TOKEN)
    if fault is not None:
        state.by_fault[fault.value] += 1
    if fault is FaultKind.HOLD and not await _held(request):
        return web.Response(status=504)  # the client is gone; the refresh never happened
    if fault is FaultKind.RESET:
        _reset(request)
        return web.Response(status=502)
    if fault in (FaultKind.E500, FaultKind.E503):
        return render(state.problems.server_error(int(fault)))
    reply = state.auth.tokens.token(params, request.headers.get("Authorization"), clock.now())
    if state.config.echo_secrets:
        _echo(reply, f"refresh_token={params.get('refresh_token', '')}")
    if fault is FaultKind.RESET_AFTER:
        _reset(request)
        return web.Response(status=502)
    if fault is FaultKind.STALL:
        await asyncio.sleep(state.config.stall_seconds)
    return render(reply)


async def _revoke(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = await _form(request)
    return render(state.auth.tokens.revoke(params, request.headers.get("Authorization")))


async def _app_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = await _form(request)
    return render(state.auth.tokens.app_token(params, request.headers.get("Authorization")))


async def _authorize(request: web.Request) -> web.StreamResponse:
    """Approve at once for the user named by the sandbox-only ``user`` parameter (name or id)."""
    state = request.app[STATE]
    wanted = request.query.get("user", state.world.users[0].name if state.world.users else "")
    user = next((u for u in state.world.users if wanted in (u.name, u.user_id)), None)
    if user is None:
        return render(state.problems.invalid_request(f"no sandbox user [{wanted}]"))
    code = state.auth.tokens.authorize(user.user_id, request.query, request.app[CLOCK].now())
    if isinstance(code, Reply):
        return render(code)
    location = request.query.get("redirect_uri", "")
    separator = "&" if "?" in location else "?"
    state_param = request.query.get("state", "")
    raise web.HTTPFound(f"{location}{separator}state={state_param}&code={code}")


@web.middleware
async def _problem_for_unknown_routes(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Only a request that matched no route; a handler's own 404 passes through.
    if request.match_info.http_exception is None:
        return await handler(request)
    status = request.match_info.http_exception.status
    title = "Not Found Error" if status == 404 else "Method Not Allowed"
    return render(request.app[STATE].problems.generic(status, title))


def make_app(state: SandboxState, clock: Clock) -> web.Application:
    """The sandbox as an aiohttp application over ``state``."""
    app = web.Application(middlewares=[_problem_for_unknown_routes])
    app[STATE] = state
    app[CLOCK] = clock
    app.router.add_post("/2/users/{id}/retweets", _api(Endpoint.RETWEET))
    app.router.add_delete("/2/users/{id}/retweets/{source_tweet_id}", _api(Endpoint.UNDO))
    app.router.add_get("/2/users/me", _api(Endpoint.USERS_ME))
    app.router.add_post("/2/tweets", _api(Endpoint.POST_TWEET))
    app.router.add_post("/2/oauth2/token", _token)
    app.router.add_post("/2/oauth2/revoke", _revoke)
    app.router.add_post("/oauth2/token", _app_token)
    app.router.add_get("/2/oauth2/authorize", _authorize)
    app.router.add_get("/i/oauth2/authorize", _authorize)
    add_inspection_routes(app, state, clock)
    app.on_response_prepare.append(_date_by_the_clock)
    return app


async def _date_by_the_clock(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's ``Date`` is the sandbox clock's time (aiohttp would write this machine's):
    a sandbox clock moved ahead answers as a server whose clock is ahead does."""
    response.headers[hdrs.DATE] = formatdate(request.app[CLOCK].now(), usegmt=True)
