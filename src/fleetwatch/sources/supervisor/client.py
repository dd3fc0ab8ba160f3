"""An asyncio XML-RPC client for supervisord over HTTP (TCP or a unix socket).

The HTTP transport is the seam: tests may pass any ``httpx.AsyncBaseTransport``.
Errors are mapped onto fleetwatch's tree: the peer not answering is
:class:`~fleetwatch.errors.Unreachable`, a refused login or an unexpected HTTP
status is :class:`HTTPStatusError`, garbage is ``RemoteProtocolError``, an answer
larger than ``max_answer_size`` is :class:`AnswerTooLarge`.

Every call has one deadline for the whole exchange, request and answer body
(issue #8): httpx's own timeout applies to each read, so a peer that drips its
answer a byte at a time would never time out. The body is streamed and reading
stops past ``max_answer_size`` (a 300 MB answer must not take the hub's memory).
Decoding is not in the deadline: the caller decodes after the exchange.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from fleetwatch.errors import RemoteProtocolError, SourceError, Unreachable
from fleetwatch.sources.supervisor.protocol import (
    decode_multicall,
    decode_response,
    encode_call,
    encode_multicall,
)
from fleetwatch.types import Secret

__all__ = ["AnswerTooLarge", "HTTPStatusError", "XmlRpcClient", "public_url"]

#: The default of ``max_answer_size`` (``SupervisorSourceConfig``).
DEFAULT_MAX_ANSWER_SIZE = 64 << 20


class HTTPStatusError(SourceError):
    """supervisord answered with an HTTP status other than 200."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status} {reason}".strip())


class AnswerTooLarge(RemoteProtocolError):
    """supervisord's answer is larger than ``max_answer_size``; the rest was not read."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        self.limit = limit
        self.size = size
        said = f" (Content-Length {size})" if size is not None else ""
        super().__init__(
            f"the answer exceeded {limit} bytes{said}; "
            "raise max_answer_size in the source's config to accept it"
        )


def public_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed (safe to show and log)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context (CA bundle) shared by every client.

    httpx loads the CA bundle anew for each client it creates without one, about
    0.9 MB each: 35 MB of a hub watching 40 supervisords over plain HTTP.
    """
    return httpx.create_ssl_context()


class XmlRpcClient:
    """Calls supervisord's XML-RPC methods; one instance per supervisord."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: Secret | None = None,
        timeout: float = 5.0,
        max_answer_size: int = DEFAULT_MAX_ANSWER_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            path = parts.path or parts.netloc
            self.endpoint = "http://localhost/RPC2"
            transport = transport or httpx.AsyncHTTPTransport(uds=path, verify=_tls_context())
        elif parts.scheme in ("http", "https"):
            if parts.username and username is None:
                username = parts.username
                password = Secret(parts.password or "")
            clean = urlsplit(public_url(url))
            path = clean.path if clean.path not in ("", "/") else "/RPC2"
            self.endpoint = urlunsplit((clean.scheme, clean.netloc, path, "", ""))
        else:
            raise ValueError(f"unsupported supervisord URL scheme {parts.scheme!r}")
        auth = (
            httpx.BasicAuth(username, password.reveal() if password else "") if username else None
        )
        self.timeout = timeout
        self.max_answer_size = max_answer_size
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=_tls_context(),
            auth=auth,
            timeout=timeout,
            headers={"Content-Type": "text/xml", "User-Agent": "fleetwatch"},
            # One connection per daemon is enough (its server is one thread, T11); a
            # second one serves an action while a poll is in flight.
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """Call one method; raise ``Fault`` when supervisord answers with one."""
        return decode_response(await self._post(encode_call(method, *params), timeout))

    async def multicall(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Any]:
        """Call several methods in one request; each result is a value or a ``Fault``."""
        value = decode_response(await self._post(encode_multicall(calls), timeout))
        return decode_multicall(value, len(calls))

    async def multicall_body(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> bytes:
        """The undecoded answer of a multicall (decode it with ``decode_multicall``)."""
        return await self._post(encode_multicall(calls), timeout)

    async def _post(self, body: bytes, timeout: float | None) -> bytes:
        """POST ``body``; the answer's body, all of it read within ``timeout`` seconds."""
        limit = timeout or self.timeout
        try:
            async with asyncio.timeout(limit):
                return await self._exchange(body, limit)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise Unreachable(f"no answer within {limit:g}s") from exc
        except httpx.TransportError as exc:
            raise Unreachable(_transport_error_text(exc)) from exc

    async def _exchange(self, body: bytes, limit: float) -> bytes:
        cap = self.max_answer_size
        request = self._http.build_request("POST", self.endpoint, content=body, timeout=limit)
        response = await self._http.send(request, stream=True)
        try:
            if response.status_code != 200:
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) <= 1 << 16:
                    await response.aread()  # a short error page: keep the connection
                if response.status_code == 401:
                    raise HTTPStatusError(401, "Unauthorized: check username and password")
                raise HTTPStatusError(response.status_code, response.reason_phrase)
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > cap:
                raise AnswerTooLarge(cap, int(length))
            chunks: list[bytes] = []
            size = 0
            # Decoded bytes (gzip included) are what the hub keeps, so they are what counts.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise AnswerTooLarge(cap)  # closing an unread response drops the connection
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()


def _transport_error_text(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__
