"""Whose key and whose money, for one request: the :class:`Caller`.

A server over stdio acts with its own key (``ATLASCLOUD_API_KEY``). Over HTTP, each request brings a bearer: in
the default mode it is the caller's own Atlas key, which then pays and is asked for prices; in shared-key mode
(``ATLASCLOUD_HTTP_TOKENS``) the server's key pays and the bearer only names the payer. Every Atlas call of a
request, the quote included, carries :attr:`Caller.key`; budgets, repeats and confirmation tokens name
:attr:`Caller.payer` (only ever by a salted hash). The value is built once per request, never read from process
settings mid-request, so no code path can ask with one key and pay with another.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from atlas_mcp.config import Settings

__all__ = ["KEY_CLAIM", "Caller"]

KEY_CLAIM = "atlas_key"  # OAuth mode: the claim of an access token that carries its user's key, inside this process


@dataclass(frozen=True)
class Caller:
    """One request's payer: the Atlas key its calls carry, and what names it in the spend-safety state."""

    key: SecretStr | None = None  # None: no key (a dry run still works; anything Atlas must answer is refused)
    payer: SecretStr | None = None  # the key itself, or a shared-key mode client token

    @classmethod
    def of_server(cls, settings: Settings) -> Caller:
        """The server's own key pays and names the payer (stdio, and any request without a bearer)."""
        return cls(key=settings.api_key, payer=settings.api_key)

    @classmethod
    def over_http(cls, settings: Settings, bearer: str) -> Caller:
        """An HTTP request's payer: with shared-key tokens the server's key pays and the token names the payer;
        otherwise the bearer is the caller's own Atlas key, and does both."""
        token = SecretStr(bearer)
        return cls(key=settings.api_key, payer=token) if settings.http_tokens else cls(key=token, payer=token)

    @classmethod
    def signed_in(cls, key: SecretStr, user: str) -> Caller:
        """OAuth mode: the user's own key (decrypted for this request) pays; the user id names the payer, so the
        budget follows the user across their tokens and clients."""
        return cls(key=key, payer=SecretStr(f"oauth-user:{user}"))

    @property
    def payer_text(self) -> str | None:
        """What the payer hash is made from (never shown, stored or logged as it is)."""
        return self.payer.get_secret_value() if self.payer is not None else None
