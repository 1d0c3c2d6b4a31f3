"""OAuth mode's discovery documents, in process (issue 25): what claude.ai and ChatGPT read first, within their
10 s, including behind a proxy that serves this server under a path (``ATLASCLOUD_HTTP_PUBLIC_URL``)."""

from __future__ import annotations

import base64

import pytest
from starlette.testclient import TestClient

from atlas_mcp.config import Settings
from atlas_mcp.errors import ConfigError
from atlas_mcp.server.http import HttpOptions, create_http_app

SECRET = base64.b64encode(b"s" * 32).decode()


def _app(public_url: str) -> TestClient:
    settings = Settings.from_env(
        {
            "ATLASCLOUD_OAUTH_SECRET": SECRET,
            "ATLASCLOUD_HTTP_PUBLIC_URL": public_url,
            "ATLASCLOUD_HTTP_ALLOWED_HOSTS": "mcp.example.com",
        }
    )
    app = create_http_app(settings, HttpOptions(host="0.0.0.0", port=8000, auth="oauth"))
    return TestClient(app, base_url="https://mcp.example.com")


@pytest.mark.parametrize(
    ("public", "issuer"),
    [
        ("https://mcp.example.com/mcp", "https://mcp.example.com"),
        ("https://mcp.example.com/team/mcp", "https://mcp.example.com/team"),
    ],
)
def test_the_metadata_names_each_other_with_or_without_a_path_prefix(public: str, issuer: str) -> None:
    client = _app(public)
    prefix = issuer.removeprefix("https://mcp.example.com")
    resource = client.get(f"/.well-known/oauth-protected-resource{prefix}/mcp").json()
    assert resource["resource"] == public
    assert resource["authorization_servers"] == [issuer]
    server = client.get(f"/.well-known/oauth-authorization-server{prefix}").json()
    assert server["issuer"] == issuer
    assert server["authorization_endpoint"] == f"{issuer}/authorize"
    assert server["token_endpoint"] == f"{issuer}/token"
    assert server["registration_endpoint"] == f"{issuer}/register"
    assert server["code_challenge_methods_supported"] == ["S256"]
    assert "none" in server["token_endpoint_auth_methods_supported"]
    assert server["client_id_metadata_document_supported"] is True
    assert server["authorization_response_iss_parameter_supported"] is True
    challenge = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert challenge.status_code == 401
    metadata_url = f"https://mcp.example.com/.well-known/oauth-protected-resource{prefix}/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge.headers["www-authenticate"]


def test_oauth_mode_needs_its_secret_and_takes_no_team_tokens() -> None:
    with pytest.raises(ConfigError, match="ATLASCLOUD_OAUTH_SECRET"):
        create_http_app(Settings(), HttpOptions(auth="oauth"))
    with pytest.raises(ConfigError, match="32 bytes"):
        Settings.from_env({"ATLASCLOUD_OAUTH_SECRET": base64.b64encode(b"short").decode()})
    teams = Settings.from_env(
        {"ATLASCLOUD_OAUTH_SECRET": SECRET, "ATLASCLOUD_HTTP_TOKENS": "t" * 32, "ATLASCLOUD_API_KEY": "sk-" + "k" * 20}
    )
    with pytest.raises(ConfigError, match="ATLASCLOUD_HTTP_TOKENS"):
        create_http_app(teams, HttpOptions(auth="oauth"))
