"""Streamable HTTP, for teams and hosted clients: stateless, so any replica can answer any request.

Whose key pays:

- **Per-request keys** (the default): each request carries its own Atlas key as ``Authorization: Bearer <key>``.
  The key is read by the SDK's token-verifier seam (so an OAuth authorization server can replace it later),
  lives in that request's context only, and is used for that request's Atlas calls only: the tools act through
  :meth:`AtlasClient.with_key`, a view on the shared connections that carries this caller's key and no other.
  Nothing stores it; budgets and repeats name the payer by its salted hash.
- **Shared key**: ``ATLASCLOUD_API_KEY`` pays for everyone and ``ATLASCLOUD_HTTP_TOKENS`` lists the bearer tokens
  clients must present; budgets and the repeat guard are then per client token.

A request without an acceptable bearer gets 401 with a plain ``Bearer`` challenge that says which header to send
(:class:`KeyChallenge`); nothing OAuth is advertised (no metadata, no ``/register``), since a client that sees OAuth
signals may sign in instead of sending its configured header. Host and Origin are checked against
``ATLASCLOUD_HTTP_ALLOWED_HOSTS`` (DNS rebinding) before any route answers, request bodies are bounded in size and
in time (:mod:`atlas_mcp.server.http_guard`), and ``/healthz`` and ``/readyz`` answer probes without a token: ready
or not, and which part, never why (that goes to the log: an address, a store's name or Atlas's words are nobody
else's business).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.server.request_state import RequestStateSecurity
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from atlas_mcp.addresses import is_loopback_host, origin_of
from atlas_mcp.config import Settings
from atlas_mcp.errors import AtlasMCPError, ConfigError
from atlas_mcp.server.http_guard import AllowList, HttpGuard

if TYPE_CHECKING:
    import httpx
    from mcp.server.auth.settings import AuthSettings
    from starlette.applications import Starlette

    from atlas_mcp.server.appstate import AppState
    from atlas_mcp.server.oauth import AtlasOAuth
    from atlas_mcp.state import StateStore

__all__ = ["HttpOptions", "caller_token", "create_http_app", "serve_http"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
READY_WAIT_SECONDS = 5.0  # each part of /readyz: under the probes' own timeouts (deploy/k8s: 6 s)


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    auth: Literal["header", "oauth"] = "header"  # header: a key or team token in Authorization; oauth: sign-in

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{MCP_PATH}"


class _CallerKeys:
    """Per-request keys: any bearer shaped like an Atlas key is accepted here; Atlas itself judges it."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if not 8 <= len(token) <= 512 or not token.isprintable() or any(ch.isspace() for ch in token):
            return None
        return AccessToken(token=token, client_id=_principal(token), scopes=[])


class _SharedTokens:
    """Shared-key mode: only the configured client tokens; the server's own key pays."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    async def verify_token(self, token: str) -> AccessToken | None:
        offered = token.encode()
        # Every configured token is compared, in constant time: how many match, not which, decides.
        if sum(hmac.compare_digest(offered, known) for known in self._tokens) == 0:
            return None
        return AccessToken(token=token, client_id=_principal(token), scopes=[])


def _principal(token: str) -> str:
    """A stable, non-reversible name for a bearer (the SDK binds round-trip state to it, on every replica)."""
    return "caller-" + hashlib.sha256(token.encode()).hexdigest()[:24]


def caller_token() -> str | None:
    """The bearer of the request being served, or None outside an authenticated HTTP request (stdio)."""
    access = get_access_token()
    return access.token if access is not None else None


def _security(settings: Settings, options: HttpOptions) -> TransportSecuritySettings:
    hosts = list(settings.http_allowed_hosts)
    if not hosts:
        if not is_loopback_host(options.host):
            raise ConfigError(
                "ATLASCLOUD_HTTP_ALLOWED_HOSTS: set it to the host names clients use to reach this server (e.g. "
                "mcp.example.com,mcp.example.com:443) before binding a non-loopback address."
            )
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("https", "http")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def create_http_app(
    settings: Settings,
    options: HttpOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: StateStore | None = None,
) -> Starlette:
    """The ASGI app: ``/mcp`` (stateless Streamable HTTP, SSE responses so progress reaches the caller),
    ``/healthz`` and ``/readyz``; in OAuth mode also the authorization server and its consent page."""
    from atlas_mcp.server.app import create_server

    shared = bool(settings.http_tokens)
    if shared and settings.api_key is None:
        raise ConfigError("ATLASCLOUD_HTTP_TOKENS is set, so the server's own key pays: set ATLASCLOUD_API_KEY too.")
    holder: list[AppState] = []
    oauth = _oauth_front(settings, options, holder) if options.auth == "oauth" else None
    server = create_server(
        settings if shared else settings.model_copy(update={"api_key": None}),
        transport=transport,
        store=store,
        remote=True,
        auth=oauth.settings if oauth else None,
        auth_server_provider=oauth.provider if oauth else None,
        on_state=holder.append,
        # A 2026-era call that asks the user comes back with sealed state, maybe to another replica: all must
        # hold the same keys. One process alone may keep its own.
        request_state_security=(
            RequestStateSecurity(keys=[key.get_secret_value() for key in settings.http_state_keys])
            if settings.http_state_keys
            else None
        ),
    )

    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=False,  # SSE answers: progress notifications reach the caller while a generation runs
        transport_security=_security(settings, options),
        max_request_body_size=settings.http_max_body_bytes,
        host=options.host,
    )
    # Probes need no token and say nothing secret.
    app.router.routes.append(Route("/healthz", _healthz, methods=["GET"]))
    app.router.routes.append(Route("/readyz", _readiness(holder), methods=["GET"]))
    if oauth is not None:
        # Ours first: the authorization-server metadata the SDK's lacks parts of, then the consent page.
        app.router.routes[:0] = oauth.routes
    else:
        # No OAuth here: registration does not exist (404), but a client that tries it anyway (Claude Code does,
        # after any 401, by the 2025 spec's default endpoints) shows its user the 404's words: which header to send.
        app.router.routes.append(Route("/register", _not_here(shared), methods=["POST"]))
        # Header mode: the SDK's bearer check (the same AccessToken the tools read), and no OAuth anywhere.
        # Starlette runs the middleware added last first: the guard, the bearer check, its context, the challenge.
        verifier = _SharedTokens(tuple(t.get_secret_value() for t in settings.http_tokens)) if shared else _CallerKeys()
        app.add_middleware(KeyChallenge, how=_which_header(shared))
        app.add_middleware(AuthContextMiddleware)
        app.add_middleware(AuthenticationMiddleware, backend=BearerAuthBackend(verifier))
    allowed = AllowList.configured(settings.http_allowed_hosts, options.port)
    app.add_middleware(HttpGuard, allowed=allowed, body_timeout=settings.http_body_timeout)  # outermost: first
    return app


@dataclass(frozen=True)
class _OAuthFront:
    settings: AuthSettings
    provider: AtlasOAuth
    routes: list[Route]


def _oauth_front(settings: Settings, options: HttpOptions, holder: list[AppState]) -> _OAuthFront:
    """OAuth mode's parts (:mod:`atlas_mcp.server.oauth`): the SDK's authorization server over our provider, with
    tokens bound to this server's public ``/mcp`` URL (RFC 8707), and what the SDK lacks."""
    import base64

    from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions

    from atlas_mcp.server.consent import consent_routes
    from atlas_mcp.server.oauth import AtlasOAuth, metadata_routes, revocation_route
    from atlas_mcp.state.vault import Vault

    if settings.oauth_secret is None:
        raise ConfigError(
            "--auth oauth keeps each user's Atlas key encrypted: set ATLASCLOUD_OAUTH_SECRET to 32 random bytes in "
            "base64 (openssl rand -base64 32), the same on every replica."
        )
    if settings.http_tokens:
        raise ConfigError("--auth oauth signs users in with their own Atlas keys: unset ATLASCLOUD_HTTP_TOKENS.")
    resource = settings.http_public_url or options.url
    # Behind a proxy that serves this server under a path (https://example.com/team/mcp), the issuer is that path
    # (https://example.com/team): its endpoints are found under it, and its metadata at the RFC 8414 place.
    issuer = resource.removesuffix(MCP_PATH) if resource.endswith(MCP_PATH) else origin_of(resource)
    vault = Vault(base64.b64decode(settings.oauth_secret.get_secret_value()))
    provider = AtlasOAuth(running=lambda: _running(holder), vault=vault, resource=resource, issuer=issuer)
    auth = AuthSettings(
        issuer_url=issuer,  # type: ignore[arg-type]
        resource_server_url=resource,  # type: ignore[arg-type]
        required_scopes=[],
        client_registration_options=ClientRegistrationOptions(enabled=True),
        revocation_options=RevocationOptions(enabled=True),
        validate_token_resource=True,
    )
    return _OAuthFront(auth, provider, [*metadata_routes(auth), revocation_route(provider), *consent_routes(provider)])


def _running(holder: list[AppState]) -> AppState:
    if not holder:
        raise AtlasMCPError("the server is starting; try again in a moment")
    return holder[-1]


async def _healthz(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


def _readiness(holder: list[AppState]) -> Callable[[Request], Awaitable[Response]]:
    """/readyz: the server's state exists, and Atlas's catalogue and the state store answer (each bounded)."""

    async def readyz(_request: Request) -> Response:
        if not holder:
            return JSONResponse({"ready": False, "why": "starting"}, status_code=503)
        state = holder[-1]
        problems = {}
        for part, check in (("atlas", state.catalog.models), ("state", state.spend.store.check)):
            try:
                with anyio.fail_after(READY_WAIT_SECONDS):  # a probe that hangs is no answer at all
                    await check()
            except TimeoutError:
                logger.warning("/readyz: %s did not answer within %g s", part, READY_WAIT_SECONDS)
                problems[part] = f"did not answer within {READY_WAIT_SECONDS:g} s"
            except AtlasMCPError as exc:
                logger.warning("/readyz: %s is not ready: %s", part, exc)
                problems[part] = "not ready (the server's log says why)"
        if problems:
            return JSONResponse({"ready": False, "why": problems}, status_code=503)
        return JSONResponse({"ready": True})

    return readyz


def _which_header(shared: bool) -> str:
    """What a caller without an acceptable bearer is told to send (a quoted-string: no double quotes)."""
    what, name = ("the team token you were given", "token") if shared else ("your Atlas Cloud API key", "key")
    return (
        f"Send {what} in the header 'Authorization: Bearer <{name}>'. This server takes no OAuth sign-in. "
        f"Claude Code: claude mcp add --transport http NAME URL --header 'Authorization: Bearer <{name}>'; "
        "other clients: the headers of this server's entry in their MCP config."
    )


def _not_here(shared: bool) -> Callable[[Request], Awaitable[Response]]:
    how = _which_header(shared)

    async def register(_request: Request) -> Response:
        return PlainTextResponse(f"No OAuth sign-in here. {how}", status_code=404)

    return register


class KeyChallenge:
    """Header mode's answer to a request for ``/mcp`` without an acceptable bearer: 401 with a plain ``Bearer``
    challenge whose ``error_description`` says which header to send, and nothing that invites an OAuth sign-in (no
    ``resource_metadata``; no metadata or registration endpoints exist). A client that sees OAuth signals tries
    them and may then ignore its configured header (Cursor does), or show "needs authentication" (Claude Code)."""

    def __init__(self, app: ASGIApp, how: str) -> None:
        self.app = app
        self.how = how

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].rstrip("/") == MCP_PATH
            and not isinstance(scope.get("user"), AuthenticatedUser)
        ):
            challenge = f'Bearer error="invalid_token", error_description="{self.how}"'
            body = {"error": "invalid_token", "error_description": self.how}
            await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def serve_http(settings: Settings, options: HttpOptions) -> None:
    """Run the app with uvicorn until SIGTERM or Ctrl-C. Logs (uvicorn's included) go to stderr."""
    import uvicorn

    app = create_http_app(settings, options)
    mode = (
        "OAuth: users sign in with their own Atlas keys, kept encrypted"
        if options.auth == "oauth"
        else f"shared key, {len(settings.http_tokens)} client token(s)"
        if settings.http_tokens
        else "each request brings its own Atlas key (Authorization: Bearer)"
    )
    if settings.api_key is not None and not settings.http_tokens:
        logger.warning(
            "ATLASCLOUD_API_KEY is not used: without ATLASCLOUD_HTTP_TOKENS every request pays with its own key"
        )
    logger.info("serving MCP over Streamable HTTP at %s (%s); probes at /healthz and /readyz", options.url, mode)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        # Longer than a load balancer keeps an idle connection to us: a proxy that reuses one we had just closed
        # would drop a request it cannot retry (a POST), and its caller would see the connection cut.
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run()
