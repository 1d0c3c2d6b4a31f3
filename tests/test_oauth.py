"""OAuth mode (issue 25, part 2): ``serve --transport http --auth oauth`` as a real process, signed into by the MCP
Python SDK's own OAuth client (``mcp.client.auth``) through discovery, registration (DCR, and CIMD with a client
metadata document), the consent page, PKCE and the token endpoint; then a paid call billed to the pasted key, a
refresh, and a revocation. The user's part (the consent page) is played over HTTP by ``_Person``; the same page in
a real browser is in test_oauth_browser.py. Hostile cases: each one refused.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from atlas_mcp.emulator import Emulator, EmulatorConfig, Fault
from atlas_mcp.emulator.state import Upload

from .harness import expect_done
from .test_http import http_env, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # HTTP server processes

SECRET = base64.b64encode(b"k" * 32).decode()
PASTED = "sk-oauth-user-key-0123456789abcdef"
CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the test reads the redirect's Location


@pytest.fixture
def oauth_server(emulator: Emulator, tmp_path: Path) -> Iterator[str]:
    env = http_env(emulator, tmp_path, ATLASCLOUD_OAUTH_SECRET=SECRET)
    with http_server(env, tmp_path / "http.log", auth="oauth") as origin:
        yield origin


class _Memory:
    """The SDK client's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class _Person:
    """The user in front of the browser: follows /authorize to the consent page, pastes the key, and hands the
    redirect's code to the client (as a browser landing on the client's callback would)."""

    def __init__(self, key: str = PASTED) -> None:
        self.key = key
        self.result: AuthorizationCodeResult | None = None
        self.pages: list[httpx.Response] = []

    async def open(self, url: str) -> None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=20) as browser:
            answer = await browser.get(url)
            assert answer.status_code == 302, answer.text
            page = await browser.get(answer.headers["location"])
            self.pages.append(page)
            assert page.status_code == 200, page.text
            form = _hidden_fields(page.text)
            sent = await browser.post(page.url, data={**form, "api_key": self.key})
            assert sent.status_code == 302, sent.text
            query = parse_qs(urlsplit(sent.headers["location"]).query)
            self.result = AuthorizationCodeResult(
                code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
            )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


def _hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))


@asynccontextmanager
async def signed_in(
    origin: str, person: _Person, storage: _Memory, *, client_metadata_url: str | None = None
) -> AsyncIterator[Client]:
    metadata = OAuthClientMetadata(
        redirect_uris=[CALLBACK],  # type: ignore[list-item]
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        client_name="test client",
    )
    auth = OAuthClientProvider(
        f"{origin}/mcp",
        metadata,
        storage,
        redirect_handler=person.open,
        callback_handler=person.callback,
        client_metadata_url=client_metadata_url,
    )
    async with (
        httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(f"{origin}/mcp", http_client=http)) as client,
    ):
        yield client


def _paid_with(emulator: Emulator) -> set[str | None]:
    return {r.headers.get("authorization") for r in emulator.state.requests if r.path.startswith("/api/v1/model/")}


async def test_the_sdk_client_signs_in_with_dcr_and_generates_on_the_pasted_key(
    oauth_server: str, emulator: Emulator, tmp_path: Path
) -> None:
    person, storage = _Person(), _Memory()
    async with signed_in(oauth_server, person, storage) as client:
        result = await client.call_tool("generate_image", {"prompt": "a heron"})
    expect_done(result)
    assert storage.client is not None and not storage.client.client_id.startswith("http")  # registered (DCR)
    assert person.result is not None and person.result.iss == oauth_server  # RFC 9207
    assert _paid_with(emulator) == {f"Bearer {PASTED}"}  # billed to the key pasted on the page
    stored = (tmp_path / "state.db").read_bytes()
    for form in (
        PASTED,
        base64.b64encode(PASTED.encode()).decode(),
        base64.urlsafe_b64encode(PASTED.encode()).decode(),
    ):
        assert form.encode() not in stored, "the Atlas key is in the state store in the clear"
    assert storage.tokens is not None and storage.tokens.access_token.encode() not in stored  # tokens: hashes only


async def test_the_consent_page_is_locked_down(oauth_server: str, emulator: Emulator) -> None:
    person = _Person()
    async with signed_in(oauth_server, person, _Memory()) as client:
        await client.list_tools()
    page = person.pages[0]
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script" not in policy
    assert "<script" not in page.text and "http" not in re.sub(
        r'(action|value)="[^"]*"', "", page.text.split("<body>")[1]
    )
    assert page.headers["x-frame-options"] == "DENY"


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_sign_in(oauth_server: str) -> None:
    storage = _Memory()
    async with signed_in(oauth_server, _Person(), storage) as client:
        await client.list_tools()
    assert storage.tokens is not None and storage.client is not None
    first = storage.tokens
    token = f"{oauth_server}/token"
    form = {"grant_type": "refresh_token", "client_id": storage.client.client_id}
    renewed = httpx.post(token, data={**form, "refresh_token": first.refresh_token})
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["refresh_token"] != first.refresh_token and second["access_token"] != first.access_token
    assert _tools_list(oauth_server, second["access_token"]) == 200
    replayed = httpx.post(token, data={**form, "refresh_token": first.refresh_token})
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    # The replay revoked the whole sign-in: the newer tokens stop working too.
    assert _tools_list(oauth_server, second["access_token"]) == 401
    again = httpx.post(token, data={**form, "refresh_token": second["refresh_token"]})
    assert again.status_code == 400


async def test_a_revoked_token_stops_working(oauth_server: str) -> None:
    storage = _Memory()
    async with signed_in(oauth_server, _Person(), storage) as client:
        await client.list_tools()
    assert storage.tokens is not None and storage.client is not None
    assert _tools_list(oauth_server, storage.tokens.access_token) == 200
    revoked = httpx.post(
        f"{oauth_server}/revoke", data={"token": storage.tokens.access_token, "client_id": storage.client.client_id}
    )
    assert revoked.status_code == 200, revoked.text
    assert _tools_list(oauth_server, storage.tokens.access_token) == 401


def _tools_list(origin: str, access_token: str) -> int:
    headers = {
        "Authorization": f"Bearer {access_token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    return httpx.post(f"{origin}/mcp", json=body, headers=headers).status_code


@contextmanager
def _published(emulator: Emulator, tmp_path: Path, document: Any, name: str = "client.json") -> Iterator[str]:
    """A client metadata document served by the emulator (the Atlas origin this server talks to is the one
    loopback origin it fetches from, as for outputs); ``document`` may refer to its own URL as ``{url}``."""
    import json

    key = secrets.token_hex(16)
    url = f"{emulator.url}/emulator-storage/uploads/{key}/{name}"
    body = json.dumps(document).replace("{url}", url).encode() if not isinstance(document, bytes) else document
    path = tmp_path / f"{key}-{name}"
    path.write_bytes(body)
    emulator.state.add_upload(Upload(key, name, "application/json", len(body), path))
    yield url


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for an emulator that serves https as Atlas does."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "atlas.pem", folder / "atlas.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, private


async def test_the_sdk_client_signs_in_with_a_client_id_metadata_document(tmp_path: Path) -> None:
    """CIMD end to end with the SDK's own client, which takes only an https metadata URL: the document is served
    (over https, by an emulator with its own certificate, trusted through SSL_CERT_FILE) from the Atlas origin this
    server talks to, the one loopback origin it fetches from."""
    cert, key = _self_signed(tmp_path)
    with Emulator(EmulatorConfig(prediction_seconds=0.3), tls=(cert, key)) as secure:
        assert secure.url.startswith("https://")
        document = {"client_id": "{url}", "client_name": "CIMD client", "redirect_uris": [CALLBACK]}
        with _published(secure, tmp_path, document) as url:
            env = http_env(secure, tmp_path, ATLASCLOUD_OAUTH_SECRET=SECRET, SSL_CERT_FILE=str(cert))
            storage = _Memory()
            with http_server(env, tmp_path / "http.log", auth="oauth") as origin:
                async with signed_in(origin, _Person(), storage, client_metadata_url=url) as client:
                    result = await client.call_tool("generate_image", {"prompt": "a heron"})
        expect_done(result)
        assert storage.client is not None and storage.client.client_id == url  # no registration: the URL is its id
        assert _paid_with(secure) == {f"Bearer {PASTED}"}


async def test_a_cimd_client_signs_in_by_its_metadata_document_url(
    oauth_server: str, emulator: Emulator, tmp_path: Path
) -> None:
    """Played by hand: the SDK's client takes only an https metadata URL, and the one loopback origin this server
    fetches from is the emulator's (plain http)."""
    metadata = httpx.get(f"{oauth_server}/.well-known/oauth-authorization-server").json()
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    document = {"client_id": "{url}", "client_name": "CIMD client", "redirect_uris": [CALLBACK]}
    with _published(emulator, tmp_path, document) as url:
        started, verifier = _authorize(oauth_server, url)
        assert started.status_code == 302, started.text
        code = _consent(started.headers["location"])
        tokens = httpx.post(
            f"{oauth_server}/token",
            data={
                "grant_type": "authorization_code",
                "client_id": url,
                "code": code,
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
            },
        )
    assert tokens.status_code == 200, tokens.text
    assert _tools_list(oauth_server, tokens.json()["access_token"]) == 200
    assert not httpx.get(f"{oauth_server}/register").is_success  # nothing was registered for it


def _consent(page_url: str, key: str = PASTED) -> str:
    """The user on the consent page: paste the key, submit; the code from the redirect."""
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(page_url)
        assert page.status_code == 200, page.text
        sent = browser.post(page_url.split("?")[0], data={**_hidden_fields(page.text), "api_key": key})
        assert sent.status_code == 302, sent.text
        return parse_qs(urlsplit(sent.headers["location"]).query)["code"][0]


def _authorize(origin: str, client_id: str, redirect_uri: str = CALLBACK, **extra: str) -> tuple[httpx.Response, str]:
    """GET /authorize with PKCE S256: the answer (not followed) and the code verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "s1",
        **extra,
    }
    return httpx.get(f"{origin}/authorize", params=params), verifier


async def test_hostile_cimd_documents_are_refused(oauth_server: str, emulator: Emulator, tmp_path: Path) -> None:
    cases = {
        "another client_id": {"client_id": "https://elsewhere.example/c.json", "redirect_uris": [CALLBACK]},
        "no redirect_uris": {"client_id": "{url}"},
        "a secret-keeping client": {
            "client_id": "{url}",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        "oversized": {"client_id": "{url}", "redirect_uris": [CALLBACK], "padding": "x" * 20_000},
    }
    for name, document in cases.items():
        with _published(emulator, tmp_path, document, name=f"{name.replace(' ', '-')}.json") as url:
            answer, _ = _authorize(oauth_server, url)
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
    # A client_id on a private address (not the Atlas origin) is never fetched.
    before = len(emulator.state.requests)
    answer, _ = _authorize(oauth_server, "https://10.0.0.7/client.json")
    assert answer.status_code == 400
    assert len(emulator.state.requests) == before
    # A document whose URL redirects to a private address: the hop is checked as the first one was, and refused.
    with _published(emulator, tmp_path, {"client_id": "{url}", "redirect_uris": [CALLBACK]}, "moved.json") as url:
        emulator.state.add_fault(Fault(path=urlsplit(url).path, kind="redirect", location="https://10.0.0.7/c.json"))
        answer, _ = _authorize(oauth_server, url)
        emulator.state.clear_faults()
    assert answer.status_code == 400
    # A redirect_uri the document does not list.
    with _published(emulator, tmp_path, {"client_id": "{url}", "redirect_uris": [CALLBACK]}, "ok.json") as url:
        answer, _ = _authorize(oauth_server, url, redirect_uri="https://evil.example/cb")
    assert answer.status_code == 400


async def test_hostile_token_requests_are_refused(oauth_server: str) -> None:
    """A token for another resource, a consent form posted from elsewhere, a wrong PKCE verifier, a code used twice
    (which also revokes what its first use bought)."""
    registered = httpx.post(
        f"{oauth_server}/register",
        json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "raw"},
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    other, _ = _authorize(oauth_server, client_id, resource="https://other.example/mcp")
    assert other.status_code == 302 and "error=invalid_request" in other.headers["location"]
    # The consent form without its cookie (posted from another site): refused.
    started, verifier = _authorize(oauth_server, client_id)
    assert started.status_code == 302
    page = httpx.get(started.headers["location"])
    form = _hidden_fields(page.text)
    forged = httpx.post(f"{oauth_server}/oauth/consent", data={**form, "api_key": PASTED})
    assert forged.status_code == 403
    jar = {"atlas_consent": page.cookies.get("atlas_consent", "")}
    granted = httpx.post(f"{oauth_server}/oauth/consent", data={**form, "api_key": PASTED}, cookies=jar)
    assert granted.status_code == 302, granted.text
    again = httpx.post(f"{oauth_server}/oauth/consent", data={**form, "api_key": PASTED}, cookies=jar)
    assert again.status_code == 400  # the page is used once
    code = parse_qs(urlsplit(granted.headers["location"]).query)["code"][0]
    base = {"grant_type": "authorization_code", "client_id": client_id, "code": code, "redirect_uri": CALLBACK}
    wrong = httpx.post(f"{oauth_server}/token", data={**base, "code_verifier": secrets.token_urlsafe(48)})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    first = httpx.post(f"{oauth_server}/token", data={**base, "code_verifier": verifier})
    assert first.status_code == 200, first.text
    replay = httpx.post(f"{oauth_server}/token", data={**base, "code_verifier": verifier})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert _tools_list(oauth_server, first.json()["access_token"]) == 401  # the replay revoked the sign-in


async def test_a_key_atlas_refuses_is_not_accepted(oauth_server: str, emulator: Emulator) -> None:
    registered = httpx.post(
        f"{oauth_server}/register", json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
    )
    started, _ = _authorize(oauth_server, registered.json()["client_id"])
    emulator.state.config.api_key = "sk-the-only-key-atlas-knows-000000"
    try:
        with httpx.Client(follow_redirects=False) as browser:
            page = browser.get(started.headers["location"])
            sent = browser.post(page.url, data={**_hidden_fields(page.text), "api_key": PASTED})
    finally:
        emulator.state.config.api_key = None
    assert sent.status_code == 400 and "did not accept that key" in sent.text
