"""OAuth mode (``serve --transport http --auth oauth``): this server is its own OAuth 2.1 authorization server in
front of Atlas, so claude.ai, ChatGPT and other clients that only do OAuth can connect without pasting a key into
a config file.

The SDK (``mcp.server.auth``) serves the protocol: metadata, ``/authorize``, ``/token`` with PKCE S256, ``/register``
(DCR), ``/revoke``, and the bearer check on ``/mcp`` with RFC 8707 audience binding. :class:`AtlasOAuth` is the
provider behind it, written here with what the SDK lacks:

- **CIMD**: a ``client_id`` that is an ``https`` URL names its own metadata document, fetched under the same rules
  as output downloads (public addresses only, checked on the connected socket, a size cap), cached, and trusted only
  if it names exactly that ``client_id`` and lists the ``redirect_uri`` asked for.
- **The user's Atlas key**, pasted once on the consent page (:mod:`atlas_mcp.server.consent`) and checked against
  Atlas, is kept only encrypted (:class:`~atlas_mcp.state.vault.Vault`) under a user id; the tokens carry the user
  id, never the key, and the key never leaves the server.
- **Our tokens** are opaque, stored only as SHA-256 hashes in the state store (any replica verifies any token, a
  restart logs nobody out): access tokens for 1 h, refresh tokens rotated on every use. A refresh token used twice,
  or an authorization code used twice, revokes everything issued from that sign-in (its "family").
- Every token is bound to this server's resource URL (RFC 8707): a client that asks for another resource is
  refused, and a token is only accepted for ``/mcp`` here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.server.auth.routes import build_metadata
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atlas_mcp.atlas import AtlasClient
from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.caller import KEY_CLAIM
from atlas_mcp.state import StateStore
from atlas_mcp.state.vault import Vault

__all__ = [
    "ACCESS_SECONDS",
    "CONSENT_PATH",
    "REFRESH_SECONDS",
    "AtlasOAuth",
    "Pending",
    "metadata_routes",
    "revocation_route",
    "same_resource",
]

logger = logging.getLogger(__name__)

CONSENT_PATH = "/oauth/consent"
ACCESS_SECONDS = 3600
REFRESH_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 300
PENDING_SECONDS = 600  # the user has this long to fill in the consent page
CLIENT_SECONDS = 180 * 24 * 3600  # a DCR registration is kept this long
CIMD_MAX_BYTES = 16 * 1024
CIMD_CACHE_SECONDS = 3600
CIMD_CACHE_ENTRIES = 256


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_resource(a: str | None, b: str) -> bool:
    """RFC 8707 resource indicators compared as the SDK's bearer check compares them: a trailing slash aside."""
    return a is not None and a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class Pending:
    """An authorization request waiting for its user on the consent page."""

    pending_id: str
    client_id: str
    client_name: str | None
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    state: str | None
    scopes: list[str]
    code_challenge: str
    resource: str
    csrf: str


@dataclass
class AtlasOAuth:
    """The SDK's ``OAuthAuthorizationServerProvider``, over the state store. ``running``
    gives the server's state once its lifespan has started: its store, and its Atlas client's connections (for CIMD
    documents and for checking a pasted key). ``resource`` is the ``/mcp`` URL clients use, ``issuer`` the URL it
    sits under (its origin, or a proxy's path)."""

    running: Callable[[], AppState]
    vault: Vault
    resource: str
    issuer: str
    _cimd: dict[str, tuple[float, OAuthClientInformationFull]] = field(default_factory=dict)

    @property
    def store(self) -> StateStore:
        return self.running().spend.store

    @property
    def atlas(self) -> AtlasClient:
        return self.running().atlas

    # -- small storage helpers: JSON under a prefix, with a time to live ------------------------------------------

    async def _put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        raw, now = json.dumps(value, separators=(",", ":")), time.time()
        held = await self.store.claim(key, raw, ttl=ttl, now=now)
        if held is not None and not await self.store.swap(key, held, raw, ttl=ttl, now=now):
            raise AtlasMCPError("the state store changed under a write; try again")

    async def _get(self, key: str) -> dict[str, Any] | None:
        raw = await self.store.peek(key, now=time.time())
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def _once(self, key: str, ttl: float) -> bool:
        """True the first time it is asked for ``key`` (within ``ttl``), on any replica."""
        return await self.store.claim(f"oauth:once:{key}", "1", ttl=ttl, now=time.time()) is None

    async def _used(self, key: str) -> bool:
        """Whether :meth:`_once` was already asked for ``key``."""
        return await self.store.peek(f"oauth:once:{key}", now=time.time()) is not None

    async def revoke_family(self, family: str) -> None:
        await self.store.claim(f"oauth:revoked:{family}", "1", ttl=REFRESH_SECONDS, now=time.time())

    async def _revoked(self, family: str) -> bool:
        return await self.store.peek(f"oauth:revoked:{family}", now=time.time()) is not None

    # -- clients: DCR and CIMD ------------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if client_id.startswith(("https://", "http://")):
            return await self._metadata_document(client_id)
        found = await self._get(f"oauth:client:{client_id}")
        try:
            return OAuthClientInformationFull.model_validate(found) if found else None
        except ValidationError:
            return None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if client_info.client_id is None or client_info.client_id.startswith(("https://", "http://")):
            raise RegistrationError("invalid_client_metadata", "a registered client_id is ours to choose")
        await self._put(f"oauth:client:{client_info.client_id}", client_info.model_dump(mode="json"), CLIENT_SECONDS)

    async def _metadata_document(self, client_id: str) -> OAuthClientInformationFull | None:
        """A Client ID Metadata Document: fetched from the client_id URL itself (public addresses only, or the
        Atlas origin this server talks to, as output downloads are), at most 16 KB, cached for an hour."""
        cached = self._cimd.get(client_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        parts = urlsplit(client_id)
        own = f"{parts.scheme}://{parts.netloc}" == self.atlas.origin
        if (parts.scheme != "https" and not own) or not parts.path.strip("/") or parts.fragment or parts.username:
            logger.info("CIMD client_id refused: not an https URL with a path")
            return None
        chunks: list[bytes] = []
        try:
            await self.atlas.download_into(client_id, chunks.append, max_bytes=CIMD_MAX_BYTES)
            document = json.loads(b"".join(chunks))
        except (AtlasMCPError, ValueError) as exc:
            logger.info("CIMD document for %s could not be used: %s", client_id, exc)
            return None
        client = _client_from_document(client_id, document)
        if client is not None:
            if len(self._cimd) >= CIMD_CACHE_ENTRIES:  # anyone may name documents: the oldest make room
                del self._cimd[next(iter(self._cimd))]
            self._cimd[client_id] = (time.monotonic() + CIMD_CACHE_SECONDS, client)
        return client

    # -- authorization: the consent page, then a code -------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and not same_resource(params.resource, self.resource):
            raise AuthorizeError("invalid_request", f"this server issues tokens only for {self.resource}")
        assert client.client_id is not None
        pending = Pending(
            pending_id=secrets.token_urlsafe(24),
            client_id=client.client_id,
            client_name=client.client_name,
            redirect_uri=str(params.redirect_uri),
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            state=params.state,
            scopes=params.scopes or [],
            code_challenge=params.code_challenge,
            resource=self.resource,
            csrf=secrets.token_urlsafe(24),
        )
        await self._put(f"oauth:pending:{pending.pending_id}", pending.__dict__, PENDING_SECONDS)
        return f"{self.issuer}{CONSENT_PATH}?request={pending.pending_id}"

    async def pending(self, pending_id: str) -> Pending | None:
        found = await self._get(f"oauth:pending:{pending_id}")
        try:
            return Pending(**found) if found else None
        except TypeError:
            return None

    async def user_of(self, atlas_key: str) -> str:
        """A stable id for the holder of an Atlas key (the same key, the same user: one budget), not reversible."""
        return hmac.new(await self.store.secret(), f"oauth-user:{atlas_key}".encode(), "sha256").hexdigest()[:32]

    async def check_key(self, atlas_key: str) -> bool:
        """Whether Atlas accepts the key (its balance answers)."""
        try:
            await self.atlas.with_key(atlas_key).balance()
        except AtlasMCPError as exc:
            logger.info("a key pasted on the consent page was not accepted: %s", type(exc).__name__)
            return False
        return True

    async def grant(self, pending: Pending, atlas_key: str) -> str:
        """The user gave a key Atlas accepts: keep it (encrypted) and issue the one-use code. Returns the code."""
        if not await self._once(f"pending:{pending.pending_id}", PENDING_SECONDS):
            raise AuthorizeError("access_denied", "this sign-in page was already used; start again from your client")
        user = await self.user_of(atlas_key)
        await self._put(f"oauth:user:{user}", {"key": self.vault.seal(atlas_key, bound_to=user)}, REFRESH_SECONDS)
        code = secrets.token_urlsafe(32)
        record = AuthorizationCode(
            code=code,
            scopes=pending.scopes,
            expires_at=time.time() + CODE_SECONDS,
            client_id=pending.client_id,
            code_challenge=pending.code_challenge,
            redirect_uri=pending.redirect_uri,  # type: ignore[arg-type]
            redirect_uri_provided_explicitly=pending.redirect_uri_provided_explicitly,
            resource=pending.resource,
            subject=user,
        )
        value = record.model_dump(mode="json", exclude={"code"}) | {"family": secrets.token_urlsafe(16)}
        await self._put(f"oauth:code:{_digest(code)}", value, CODE_SECONDS)
        return code

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        found = await self.lookup("code", authorization_code)
        if found is None or found.get("client_id") != client.client_id:
            return None
        found = dict(found)
        found.pop("family", None)
        return AuthorizationCode.model_validate({**found, "code": authorization_code})

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        family = await self._use_once("code", authorization_code.code, CODE_SECONDS)
        assert client.client_id is not None
        assert authorization_code.subject is not None
        return await self._issue(client.client_id, authorization_code.subject, authorization_code.scopes, family)

    async def _use_once(self, kind: str, token: str, ttl: float) -> str:
        """Spend a one-use code or refresh token now, on whichever replica; returns its sign-in's family. A second
        use means it was stolen (or replayed): everything issued from that sign-in is revoked (OAuth 2.1 4.1.3, 4.3)."""
        digest = _digest(token)
        what = "authorization code" if kind == "code" else "refresh token"
        found = await self.lookup(kind, token)
        if found is None:
            raise TokenError("invalid_grant", f"{what} expired")
        family = str(found["family"])
        if not await self._once(f"{kind}:{digest}", ttl):
            await self.revoke_family(family)
            raise TokenError("invalid_grant", f"{what} already used")
        return family

    async def _issue(self, client_id: str, user: str, scopes: list[str], family: str) -> OAuthToken:
        access, refresh, now = f"atk_{secrets.token_urlsafe(32)}", f"art_{secrets.token_urlsafe(32)}", int(time.time())
        common = {"client_id": client_id, "subject": user, "scopes": scopes, "resource": self.resource}
        await self._put(
            f"oauth:access:{_digest(access)}",
            common | {"family": family, "expires_at": now + ACCESS_SECONDS},
            ACCESS_SECONDS,
        )
        await self._put(
            f"oauth:refresh:{_digest(refresh)}",
            common | {"family": family, "expires_at": now + REFRESH_SECONDS},
            REFRESH_SECONDS,
        )
        return OAuthToken(
            access_token=access,
            token_type="Bearer",  # noqa: S106 - the scheme's name, not a secret
            expires_in=ACCESS_SECONDS,
            refresh_token=refresh,
            scope=" ".join(scopes) or None,
        )

    # -- refresh, access, revoke ----------------------------------------------------------------------------------

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        found = await self.lookup("refresh", refresh_token)
        if found is None or found.get("client_id") != client.client_id or await self._revoked(str(found["family"])):
            return None
        if await self._used(f"refresh:{_digest(refresh_token)}"):
            await self.revoke_family(str(found["family"]))  # a rotated-out refresh token came back: stolen
            return None
        return RefreshToken(
            token=refresh_token,
            client_id=str(found["client_id"]),
            scopes=list(found.get("scopes") or []),
            expires_at=found.get("expires_at"),
            resource=found.get("resource"),
            subject=found.get("subject"),
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        family = await self._use_once("refresh", refresh_token.token, REFRESH_SECONDS)
        assert client.client_id is not None
        assert refresh_token.subject is not None
        return await self._issue(client.client_id, refresh_token.subject, scopes or refresh_token.scopes, family)

    async def load_access_token(self, token: str) -> AccessToken | None:
        found = await self.lookup("access", token)
        if found is None or await self._revoked(str(found["family"])):
            return None
        user = str(found["subject"])
        sealed = await self._get(f"oauth:user:{user}")
        key = self.vault.open(str(sealed.get("key", "")), bound_to=user) if sealed else None
        if key is None:
            return None
        return AccessToken(
            token=token,
            client_id=str(found["client_id"]),
            scopes=list(found.get("scopes") or []),
            expires_at=found.get("expires_at"),
            resource=found.get("resource"),
            subject=user,
            claims={KEY_CLAIM: SecretStr(key)},
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        for kind in ("access", "refresh"):
            found = await self.lookup(kind, token.token)
            if found is not None:
                await self.revoke_family(str(found["family"]))

    async def lookup(self, kind: str, token: str) -> dict[str, Any] | None:
        """An access or refresh token's (or a code's) record, by the token (only its hash is stored)."""
        return await self._get(f"oauth:{kind}:{_digest(token)}")

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull, params: Any) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "identity assertions are not accepted here")


def _client_from_document(client_id: str, document: Any) -> OAuthClientInformationFull | None:
    """A CIMD document as a client: it must name exactly this client_id, list its redirect URIs, and be a public
    client (no secret: none can be kept in a document anyone may read)."""
    if not isinstance(document, dict) or document.get("client_id") != client_id:
        logger.info("CIMD document for %s refused: it names another client_id", client_id)
        return None
    redirects = document.get("redirect_uris")
    if not isinstance(redirects, list) or not redirects or not all(isinstance(uri, str) for uri in redirects):
        logger.info("CIMD document for %s refused: no redirect_uris", client_id)
        return None
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        logger.info("CIMD document for %s refused: token_endpoint_auth_method %r, not none", client_id, method)
        return None
    try:
        return OAuthClientInformationFull(
            client_id=client_id,
            redirect_uris=redirects,
            client_name=document.get("client_name") if isinstance(document.get("client_name"), str) else None,
            token_endpoint_auth_method="none",  # noqa: S106 - a public client: no secret at all
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )
    except ValidationError:
        logger.info("CIMD document for %s refused: its redirect_uris are not URLs", client_id)
        return None


def metadata_routes(auth: AuthSettings) -> list[Route]:
    """RFC 8414 metadata: the SDK's, plus what it leaves out and clients look for. ``none`` among the token
    endpoint's auth methods (public clients: claude.ai and ChatGPT keep no secret; CIMD clients cannot),
    ``client_id_metadata_document_supported`` (CIMD), and ``iss`` in the authorization response (RFC 9207)."""
    metadata = build_metadata(
        auth.issuer_url,
        None,
        auth.client_registration_options or ClientRegistrationOptions(),
        auth.revocation_options or RevocationOptions(),
    ).model_dump(mode="json", exclude_none=True)
    metadata["issuer"] = str(auth.issuer_url).rstrip("/")  # RFC 8414: exactly the issuer, no trailing slash
    metadata["token_endpoint_auth_methods_supported"] = ["none", "client_secret_post", "client_secret_basic"]
    metadata["client_id_metadata_document_supported"] = True
    metadata["authorization_response_iss_parameter_supported"] = True

    async def serve(_request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
        return JSONResponse(metadata, headers=headers)

    # An issuer with a path (behind a proxy, https://example.com/team) is looked up at
    # /.well-known/oauth-authorization-server/team (RFC 8414 3.1); without one, at the bare well-known path.
    path = "/.well-known/oauth-authorization-server" + urlsplit(metadata["issuer"]).path.rstrip("/")
    return [Route(path, serve, methods=["GET"])]


def revocation_route(provider: AtlasOAuth) -> Route:
    """RFC 7009 revocation, for public clients too: the SDK's handler requires a ``client_secret`` field, which a
    public client (claude.ai, ChatGPT, any CIMD client) has none of, and so refused them all with 400. A client with
    a secret must present it; the answer is 200 whether or not the token was known (RFC 7009 2.2)."""

    async def revoke(request: Request) -> Response:
        form = await request.form()
        token, client_id = str(form.get("token", "")), str(form.get("client_id", ""))
        client = await provider.get_client(client_id) if client_id else None
        if client is None:
            return JSONResponse({"error": "invalid_client", "error_description": "unknown client_id"}, status_code=401)
        if client.token_endpoint_auth_method != "none":  # noqa: S105 - the name of "no secret"
            offered = str(form.get("client_secret", ""))
            if not client.client_secret or not hmac.compare_digest(offered.encode(), client.client_secret.encode()):
                return JSONResponse({"error": "invalid_client", "error_description": "wrong secret"}, status_code=401)
        if token:
            for kind in ("access", "refresh"):
                found = await provider.lookup(kind, token)
                if found is not None and found.get("client_id") == client.client_id:
                    await provider.revoke_family(str(found["family"]))
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    return Route("/revoke", revoke, methods=["POST"])
