"""Settings come from the environment, fail early with one clear line, and never show the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_mcp.config import Settings
from atlas_mcp.errors import ConfigError


def test_defaults_need_nothing() -> None:
    settings = Settings.from_env({})
    assert settings.api_key is None
    assert settings.base_url == "https://api.atlascloud.ai"
    assert settings.wait_seconds == 45
    assert settings.upload_roots == ()


def test_the_key_is_secret_in_every_rendering() -> None:
    settings = Settings.from_env({"ATLASCLOUD_API_KEY": "sk-very-secret-123456"})
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-very-secret-123456"
    for rendering in (repr(settings), str(settings), settings.model_dump_json()):
        assert "sk-very-secret-123456" not in rendering


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ATLASCLOUD_WAIT_SECONDS", "soon", "expected a number"),
        ("ATLASCLOUD_WAIT_SECONDS", "-1", "greater than or equal"),
        ("ATLASCLOUD_HTTP_TIMEOUT", "0", "greater than"),
        ("ATLASCLOUD_BASE_URL", "ftp://x", "expected an origin"),
        ("ATLASCLOUD_BASE_URL", "http://api.atlascloud.ai", "plain http is only allowed"),
        ("ATLASCLOUD_BASE_URL", "https://api.atlascloud.ai/api/v1", "without a path"),
        ("ATLASCLOUD_OUTPUT_DIR", "relative/dir", "absolute path"),
        ("ATLASCLOUD_UPLOAD_ROOTS", "/no/such/folder", "not an existing folder"),
        ("ATLASCLOUD_PREVIEW_BUDGET_KB", "5000", "less than or equal"),
        ("ATLASCLOUD_LOG_LEVEL", "chatty", "DEBUG"),
        ("ATLASCLOUD_API_KEY", "sk abc", "spaces"),
        ("ATLASCLOUD_API_KEY", "'sk-quoted-1234567'", "wrapped in quotes"),
        ("ATLASCLOUD_API_KEY", "“sk-quoted-1234567”", "wrapped in quotes"),
        ("ATLASCLOUD_BASE_URL", "https://user:s3cret-pass@api.atlascloud.ai", "without a user name or password"),
        ("ATLASCLOUD_MAX_UPLOAD_MB", "1e308", "less than or equal to 10240"),
        ("ATLASCLOUD_WAIT_SECONDS", "nan", "finite number"),
        ("ATLASCLOUD_HTTP_TIMEOUT", "inf", "finite number"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    text = str(raised.value)
    assert text.startswith(f"{variable}:")
    assert message in text
    assert "\n" not in text
    if variable == "ATLASCLOUD_API_KEY":
        assert value not in text and "quoted-1234567" not in text
    assert "s3cret-pass" not in text


def test_loopback_http_and_roots(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = Settings.from_env(
        {
            "ATLASCLOUD_BASE_URL": "http://127.0.0.1:8787/",
            "ATLASCLOUD_UPLOAD_ROOTS": f"{tmp_path / 'a'}:{tmp_path / 'b'}",
            "ATLASCLOUD_OUTPUT_DIR": str(tmp_path / "out"),
        }
    )
    assert settings.base_url == "http://127.0.0.1:8787"
    assert settings.upload_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
