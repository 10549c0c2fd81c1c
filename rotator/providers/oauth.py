"""Bearer-token plumbing shared by the adapters that authenticate with a minted token.

``TokenProvider`` is the dance every such adapter does: a token key naming one credential set,
a mint, and calls that go through ``authorized`` (cached token; on 401 drop it, mint once more,
call again). ``OAuthClientCredentialsProvider`` adds the OAuth client-credentials mint that
Adobe IMS, UiPath Identity and Commerce Layer share; CipherTrust mints its own way (password
and refresh-token grants) on top of ``TokenProvider``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import httpx

from rotator.errors import ProviderError
from rotator.providers.base import (
    BaseProvider,
    TargetSpec,
    authorized,
    raise_for_status,
    require,
    send,
)


class TokenProvider(BaseProvider):
    """An adapter whose API calls carry ``Authorization: Bearer <token>``."""

    def _token_key(self, target: TargetSpec) -> tuple[str, ...]:
        """Names one credential set in the process-wide token cache (never a secret)."""
        raise NotImplementedError

    async def _mint(self, target: TargetSpec) -> tuple[str, float]:
        """A fresh token and its lifetime in seconds."""
        raise NotImplementedError

    def _headers(self, target: TargetSpec, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _authorized(
        self,
        target: TargetSpec,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """One call with a cached token, re-minted once on 401. ``before_send`` runs before
        every send (the first and the one after a re-mint)."""
        client = self._ctx.client(target)

        async def call(token: str) -> httpx.Response:
            if before_send is not None:
                await before_send()
            merged = {**self._headers(target, token), **(headers or {})}
            return await send(client, self.name, method, url, headers=merged, **kw)

        return await authorized(
            self._ctx.tokens, self._token_key(target), lambda: self._mint(target), call
        )


class OAuthClientCredentialsProvider(TokenProvider):
    """Tokens from an OAuth 2.0 client-credentials grant (``client_id``/``client_secret``).

    Subclasses name the token URL and scope; the class variables say how the grant is sent
    and how its failures map.
    """

    token_json: ClassVar[bool] = False  # send the grant as JSON (else as a form)
    default_lifetime: ClassVar[float] = 3600.0  # when the response has no expires_in
    # OAuth reports a bad client or scope as 400 invalid_client / invalid_scope: the
    # credentials are wrong, whatever the generic status table says.
    token_error_overrides: ClassVar[Mapping[int, type[ProviderError]]] = {}

    def _token_url(self, target: TargetSpec) -> str:
        raise NotImplementedError

    def _scope(self, target: TargetSpec) -> str:
        """The scope to request; empty: send no scope parameter at all."""
        raise NotImplementedError

    def _describe_token_error(self, response: httpx.Response) -> tuple[str, str]:
        """The RFC 6749 error body: ``{"error", "error_description"}``."""
        body = response.json()
        if not isinstance(body, dict):
            return "", ""
        return str(body.get("error", "")), str(body.get("error_description", ""))

    async def _before_mint(self, token_url: str) -> None:
        """Runs before each token request (Commerce Layer budgets its mints)."""
        return None

    def _token_key(self, target: TargetSpec) -> tuple[str, ...]:
        return (
            self.name,
            self._token_url(target),
            str(require(target.credentials, "client_id", "credential")),
            self._scope(target),
        )

    async def _mint(self, target: TargetSpec) -> tuple[str, float]:
        _, token_url, client_id, scope = self._token_key(target)
        await self._before_mint(token_url)
        grant = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": require(target.credentials, "client_secret", "credential"),
        }
        if scope:  # an empty scope is left out, not sent empty (Commerce Layer sends none)
            grant["scope"] = scope
        encoded: dict[str, Any] = (
            {"json": grant, "headers": {"Accept": "application/json"}}
            if self.token_json
            else {"data": grant}
        )
        response = await send(self._ctx.client(target), self.name, "POST", token_url, **encoded)
        raise_for_status(
            response, self.name, self._describe_token_error, overrides=self.token_error_overrides
        )
        body = response.json()
        return str(body["access_token"]), float(body.get("expires_in", self.default_lifetime))


__all__ = ["OAuthClientCredentialsProvider", "TokenProvider"]
