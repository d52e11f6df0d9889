"""The Connect protocol (JSON codec) over httpx: unary and server-streaming
calls, with the engine's errors turned into exceptions, and failover
between several engine hosts.

One core, two faces: _Base builds requests and reads answers; SyncTransport
and AsyncTransport only do the I/O.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from . import _proto as pb
from ._errors import EngineError, UnavailableError, engine_error, http_status_code

if TYPE_CHECKING:
    from httpx._client import UseClientDefault

ENV_HOST = "RUNNEL_HOST"
ENV_TOKEN = "RUNNEL_TOKEN"
DEFAULT_HOST = "http://127.0.0.1:7077"

_M = TypeVar("_M", bound=pb.Message)

#: Bounds one message read from a stream, as the Go SDK does.
MAX_READ_BYTES = 64 << 20

_USER_AGENT = "runnel-python/0.1"
_END_STREAM = 0x02
_COMPRESSED = 0x01
_HEADER = struct.Struct(">BI")

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def parse_hosts(raw: str) -> list[str]:
    """Parses one engine base URL or several separated by commas, as the Go
    SDK does: a host without a scheme is taken as http://; all must use the
    same scheme."""
    hosts: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            part = "http://" + part
        u = urlsplit(part)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"invalid host {part!r}: scheme must be http or https")
        if not u.netloc:
            raise ValueError(f"invalid host {part!r}: no host name")
        if u.query or u.fragment:
            raise ValueError(f"invalid host {part!r}: must not have a query or fragment")
        hosts.append(part.rstrip("/"))
    if not hosts:
        raise ValueError(f"invalid host {raw!r}: no URL")
    scheme = hosts[0].split("://", 1)[0]
    for h in hosts[1:]:
        if not h.startswith(scheme + "://"):
            raise ValueError(f"invalid hosts {raw!r}: all must use {scheme}")
    return hosts


class _Hosts:
    """The engine nodes, and which one calls go to. A call that cannot reach
    the current node moves to the next; only the first failure of a node
    moves on, so concurrent failures do not skip the next node."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts
        self._cur = 0
        self._lock = threading.Lock()

    def current(self) -> tuple[int, str]:
        i = self._cur
        return i, self.hosts[i % len(self.hosts)]

    def failed(self, i: int) -> None:
        with self._lock:
            if self._cur == i:
                self._cur = i + 1


class Config:
    """Where the engine is and how to authenticate, resolved like the Go
    SDK: arguments, then RUNNEL_HOST and RUNNEL_TOKEN, then the defaults."""

    def __init__(self, host: str | None, token: str | None, timeout: float) -> None:
        if host is None:
            host = os.environ.get(ENV_HOST) or DEFAULT_HOST
        if token is None:
            token = os.environ.get(ENV_TOKEN, "")
        self.hosts = _Hosts(parse_hosts(host))
        self.token = token
        self.timeout = timeout

    def headers(self, streaming: bool) -> dict[str, str]:
        h = {
            "Content-Type": "application/connect+json" if streaming else "application/json",
            "User-Agent": _USER_AGENT,
        }
        if not streaming:
            h["Connect-Protocol-Version"] = "1"
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        return h


def _error_from_body(status: int, body: bytes) -> EngineError:
    try:
        obj = _loads(body)
        code, message = obj["code"], obj.get("message", "")
        if isinstance(code, str) and isinstance(message, str):
            return engine_error(code, message)
    except (ValueError, KeyError, TypeError):
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return engine_error(http_status_code(status), f"HTTP {status}: {text}" if text else f"HTTP {status}")


def _timeout(timeout: float | None) -> httpx.Timeout | UseClientDefault:
    if timeout is None:
        return httpx.USE_CLIENT_DEFAULT
    return httpx.Timeout(timeout, connect=min(timeout, 5.0))


def _transport_error(method: str, exc: Exception) -> UnavailableError:
    return UnavailableError(f"{method}: {type(exc).__name__}: {exc}", code="unavailable", from_engine=False)


def envelope(msg: pb.Message) -> bytes:
    data = _dumps(msg.to_json()).encode()
    return _HEADER.pack(0, len(data)) + data


class EnvelopeReader:
    """Splits a Connect streaming response body into messages. feed returns
    the complete messages' JSON objects; the end-of-stream message raises
    its error or sets ``ended``."""

    __slots__ = ("_buf", "ended", "method")

    def __init__(self, method: str) -> None:
        self._buf = bytearray()
        self.ended = False
        self.method = method

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        buf = self._buf
        buf += chunk
        out: list[dict[str, Any]] = []
        off, n = 0, len(buf)
        while n - off >= 5:
            flags, size = _HEADER.unpack_from(buf, off)
            if size > MAX_READ_BYTES:
                raise EngineError(f"{self.method}: message of {size} bytes over the limit", code="resource_exhausted", from_engine=False)
            end = off + 5 + size
            if end > n:
                break
            body = bytes(buf[off + 5 : end])
            off = end
            if flags & _COMPRESSED:
                raise EngineError(f"{self.method}: compressed message not supported", code="internal", from_engine=False)
            if flags & _END_STREAM:
                self.ended = True
                obj = _loads(body) if body else {}
                err = obj.get("error")
                if err:
                    raise engine_error(str(err.get("code", "unknown")), str(err.get("message", "")))
                break
            out.append(_loads(body))
        if off:
            del buf[:off]
        return out

    def finish(self) -> None:
        """Called when the body ended: no end-of-stream message means the
        connection broke."""
        if not self.ended:
            raise UnavailableError(f"{self.method}: the stream broke off", from_engine=False)


class SyncTransport:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        c = self._client
        if c is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        timeout=httpx.Timeout(self.cfg.timeout, connect=5.0),
                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
                    )
                c = self._client
        return c

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def unary(self, method: str, req: pb.Message, resp_cls: type[_M], timeout: float | None = None) -> _M:
        body = _dumps(req.to_json()).encode()
        headers = self.cfg.headers(False)
        t = _timeout(timeout)
        tries = len(self.cfg.hosts.hosts)
        while True:
            i, host = self.cfg.hosts.current()
            try:
                r = self.client.post(host + "/" + method, content=body, headers=headers, timeout=t)
            except httpx.ConnectError as e:
                self.cfg.hosts.failed(i)
                tries -= 1
                if tries > 0:
                    continue  # never sent: safe on the next node
                raise _transport_error(method, e) from e
            except httpx.TransportError as e:
                self.cfg.hosts.failed(i)
                raise _transport_error(method, e) from e
            if r.status_code != 200:
                raise _error_from_body(r.status_code, r.content)
            return resp_cls.from_json(_loads(r.content))

    @contextmanager
    def stream(self, method: str, req: pb.Message, read_timeout: float | None) -> Iterator[Iterator[dict[str, Any]]]:
        """Opens a server stream; yields an iterator over its messages."""
        i, host = self.cfg.hosts.current()
        try:
            with self.client.stream(
                "POST", host + "/" + method, content=envelope(req), headers=self.cfg.headers(True),
                timeout=httpx.Timeout(self.cfg.timeout, connect=5.0, read=read_timeout),
            ) as r:
                if r.status_code != 200:
                    r.read()
                    raise _error_from_body(r.status_code, r.content)
                yield _messages(r.iter_raw(), method)
        except httpx.TransportError as e:
            self.cfg.hosts.failed(i)
            raise _transport_error(method, e) from e


def _messages(chunks: Iterator[bytes], method: str) -> Iterator[dict[str, Any]]:
    reader = EnvelopeReader(method)
    for chunk in chunks:
        yield from reader.feed(chunk)
        if reader.ended:
            return
    reader.finish()


async def _amessages(chunks: AsyncIterator[bytes], method: str) -> AsyncIterator[dict[str, Any]]:
    reader = EnvelopeReader(method)
    async for chunk in chunks:
        for m in reader.feed(chunk):
            yield m
        if reader.ended:
            return
    reader.finish()


class AsyncTransport:
    """The async face. httpx's AsyncClient belongs to the event loop it was
    first used on, so there is one per loop."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()

    @property
    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        c = self._clients.get(loop)
        if c is None:
            c = httpx.AsyncClient(
                timeout=httpx.Timeout(self.cfg.timeout, connect=5.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            )
            self._clients[loop] = c
        return c

    async def aclose(self) -> None:
        c = self._clients.pop(asyncio.get_running_loop(), None)
        if c is not None:
            await c.aclose()

    async def unary(self, method: str, req: pb.Message, resp_cls: type[_M], timeout: float | None = None) -> _M:
        return resp_cls.from_json(await self.unary_json(method, req.to_json(), timeout))

    async def unary_json(self, method: str, body_obj: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        body = _dumps(body_obj).encode()
        headers = self.cfg.headers(False)
        t = _timeout(timeout)
        tries = len(self.cfg.hosts.hosts)
        while True:
            i, host = self.cfg.hosts.current()
            try:
                r = await self.client.post(host + "/" + method, content=body, headers=headers, timeout=t)
            except httpx.ConnectError as e:
                self.cfg.hosts.failed(i)
                tries -= 1
                if tries > 0:
                    continue
                raise _transport_error(method, e) from e
            except httpx.TransportError as e:
                self.cfg.hosts.failed(i)
                raise _transport_error(method, e) from e
            if r.status_code != 200:
                raise _error_from_body(r.status_code, r.content)
            obj: dict[str, Any] = _loads(r.content)
            return obj

    @asynccontextmanager
    async def stream(self, method: str, req: pb.Message, read_timeout: float | None) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        i, host = self.cfg.hosts.current()
        try:
            async with self.client.stream(
                "POST", host + "/" + method, content=envelope(req), headers=self.cfg.headers(True),
                timeout=httpx.Timeout(self.cfg.timeout, connect=5.0, read=read_timeout),
            ) as r:
                if r.status_code != 200:
                    await r.aread()
                    raise _error_from_body(r.status_code, r.content)
                yield _amessages(r.aiter_raw(), method)
        except httpx.TransportError as e:
            self.cfg.hosts.failed(i)
            raise _transport_error(method, e) from e
