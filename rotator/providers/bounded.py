"""Bounded HTTP reads for provider calls: a size cap after decompression, a total per call.

``rotator.providers.base.send`` runs every provider call through ``exchange``: the body is
streamed and inflated a bounded amount at a time (httpx's own decoders inflate a whole network
chunk at once, so a 51 KB gzip body became 52 MB before anything could count it), and reading
stops past the cap with ``ResponseTooLarge``. ``BoundedClient`` carries the bounds, so adapters
keep passing one client around and never see them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import httpx

from rotator.errors import ResponseTooLarge, TransportError

# Provider API answers are small JSON documents (the largest, a CipherTrust key list page, is
# tens of KB); a megabyte is generous and still bounds what a hostile peer can make us hold.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


class BoundedClient(httpx.AsyncClient):
    """An ``AsyncClient`` that carries the bounds ``send`` enforces on every call through it."""

    def __init__(self, *, total_timeout: float, max_response_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes


def bounds(client: httpx.AsyncClient) -> tuple[float, int]:
    """(total seconds per call, body cap in bytes): a plain client gets its read timeout."""
    if isinstance(client, BoundedClient):
        return client.total_timeout, client.max_response_bytes
    return client.timeout.read or 10.0, DEFAULT_MAX_RESPONSE_BYTES


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    cap: int,
    provider: str,
    unsafe: bool,
    kwargs: Mapping[str, Any],
) -> httpx.Response:
    async with client.stream(method, url, **kwargs) as streamed:
        body = await _read_capped(streamed, cap, provider, unsafe)
    # The body is decoded already: the copy handed on must not be decoded a second time.
    headers = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        streamed.status_code,
        headers=headers,
        content=body,
        request=streamed.request,
        extensions=streamed.extensions,
    )


async def _read_capped(response: httpx.Response, cap: int, provider: str, unsafe: bool) -> bytes:
    def too_large() -> ResponseTooLarge:
        return ResponseTooLarge(
            f"provider response is larger than {cap} bytes; not read further",
            provider=provider,
            status=response.status_code,
            maybe_applied=unsafe,
        )

    if response.is_stream_consumed:
        # Built in memory and already read (an injected test transport): nothing to stream.
        if len(response.content) > cap:
            raise too_large()
        return response.content
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large()
    failed = {"provider": provider, "status": response.status_code, "maybe_applied": unsafe}
    inflater = _Inflater.for_encoding(response.headers.get("content-encoding", ""), failed)
    body = bytearray()
    async for raw in response.aiter_raw():
        body += inflater.feed(raw, cap + 1 - len(body))
        if len(body) > cap:
            raise too_large()
    return bytes(body)


class _Inflater:
    """Decodes a response body at most ``room`` bytes per call (httpx's decoders inflate a
    whole network chunk at once: 64 KB of gzip can be 64 MB before anyone counts it)."""

    def __init__(self, inflate: zlib._Decompress | None, failed: Mapping[str, Any]) -> None:
        self._inflate = inflate
        self._failed = failed  # TransportError arguments when the body cannot be decoded

    @classmethod
    def for_encoding(cls, header: str, failed: Mapping[str, Any]) -> _Inflater:
        encoding = header.strip().lower()
        if encoding in ("", "identity"):
            return cls(None, failed)
        if encoding in ("gzip", "x-gzip"):
            return cls(zlib.decompressobj(zlib.MAX_WBITS | 16), failed)
        if encoding == "deflate":
            return cls(zlib.decompressobj(), failed)
        # Stacked or unrequested encodings (we ask for gzip and deflate only).
        raise TransportError("provider response has an unsupported content encoding", **failed)

    def feed(self, data: bytes, room: int) -> bytes:
        if self._inflate is None:
            return data[:room]
        out = bytearray()
        try:
            while data and len(out) < room:
                out += self._inflate.decompress(data, room - len(out))
                data = self._inflate.unconsumed_tail
        except zlib.error:
            raise TransportError("provider response body does not decode", **self._failed) from None
        return bytes(out)


__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "BoundedClient", "bounds", "exchange"]
