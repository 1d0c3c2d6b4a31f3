"""The distribution files agree with the package and with each other; the wheel check catches what it is for.

``.ci/release-check`` runs the real build, the index's checker, the bundle tool's validator and the registry schema;
these are the facts those cannot see: one version and one repository everywhere, and a bundle form whose every
field reaches a setting the server reads.
"""

from __future__ import annotations

import json
import re
import zipfile
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

from atlas_mcp import __version__
from atlas_mcp.config import Settings
from release.check import check_contents
from release.mcpb import bundle_files

ROOT = Path(__file__).resolve().parent.parent


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / name).read_text(encoding="utf-8"))
    return data


def _variables_the_server_reads() -> set[str]:
    """Every ATLASCLOUD_* variable, as each setting's description names it."""
    names = set()
    for field in Settings.model_fields.values():
        match = re.match(r"(ATLASCLOUD_[A-Z_]+):", field.description or "")
        assert match, f"a setting without its variable: {field.description!r}"
        names.add(match.group(1))
    return names


def test_one_version_and_one_repository_everywhere() -> None:
    project = metadata("atlascloud-mcp")  # as installed from pyproject.toml
    urls = dict(url.split(", ", 1) for url in project.get_all("Project-URL") or [])
    manifest, registry = _json("manifest.json"), _json("server.json")
    assert manifest["version"] == registry["version"] == __version__
    [package] = registry["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == project["Name"] == "atlascloud-mcp"
    assert package["version"] == __version__
    repository = urls["Repository"]
    assert manifest["repository"]["url"] == registry["repository"]["url"] == repository
    owner_and_name = repository.removeprefix("https://github.com/")
    assert registry["name"] == f"io.github.{owner_and_name}"
    assert f"mcp-name: {registry['name']}" in (ROOT / "README.md").read_text(encoding="utf-8")  # PyPI ownership proof
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{__version__}]" in changelog and "## Version policy" in changelog


def test_the_registry_entry_names_only_variables_the_server_reads() -> None:
    [package] = _json("server.json")["packages"]
    named = {variable["name"] for variable in package["environmentVariables"]}
    assert named <= _variables_the_server_reads()
    [key] = [variable for variable in package["environmentVariables"] if variable["name"] == "ATLASCLOUD_API_KEY"]
    assert key["isSecret"] is True


def test_every_field_of_the_bundle_form_reaches_a_setting() -> None:
    manifest = _json("manifest.json")
    assert manifest["manifest_version"] == "0.4" and manifest["server"]["type"] == "uv"
    config = manifest["server"]["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"][:3] == ["run", "--directory", "${__dirname}"] and "--frozen" in config["args"]
    assert set(config["env"]) <= _variables_the_server_reads()
    used = {
        match
        for text in [*config["args"], *config["env"].values()]
        for match in re.findall(r"user_config\.(\w+)", text)
    }
    form = manifest["user_config"]
    assert used == set(form), "a form field that reaches no setting, or a setting from no field"
    assert config["env"]["ATLASCLOUD_API_KEY"] == "${user_config.api_key}" and form["api_key"]["sensitive"] is True
    assert config["env"]["ATLASCLOUD_OUTPUT_DIR"] == "${user_config.output_folder}"
    assert form["output_folder"]["type"] == "directory"
    assert config["args"][-2:] == ["--upload-roots", "${user_config.upload_folders}"]  # a list: one argument each
    assert form["upload_folders"]["type"] == "directory" and form["upload_folders"]["multiple"] is True
    assert config["env"]["ATLASCLOUD_CONFIRM_ABOVE_USD"] == "${user_config.confirm_above_usd}"
    threshold = form["confirm_above_usd"]
    assert threshold["type"] == "number" and threshold["default"] == Settings().confirm_above_usd
    assert (ROOT / manifest["server"]["entry_point"]).is_file()


def test_the_bundle_holds_what_uv_run_needs_and_no_tests() -> None:
    files = {path.as_posix() for path in bundle_files()}
    assert {"pyproject.toml", "uv.lock", "README.md", "LICENSE", "atlas_mcp/__main__.py"} <= files
    assert "tests/fixtures/atlas/catalogue-entry.json" in files  # pyproject force-includes the emulator's data
    assert not [name for name in files if name.startswith("tests/") and not name.startswith("tests/fixtures/atlas/")]
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_the_wheel_check_refuses_tests_benchmarks_and_a_missing_emulator(tmp_path: Path) -> None:
    bad = tmp_path / "bad.whl"
    with zipfile.ZipFile(bad, "w") as wheel:
        for name in ("atlas_mcp/__main__.py", "atlas_mcp/py.typed", "tests/test_server.py", "benchmarks/__main__.py"):
            wheel.writestr(name, "")
    problems = check_contents(bad)
    assert "the wheel lacks atlas_mcp/emulator/app.py" in problems
    assert "the wheel holds tests/test_server.py" in problems
    assert "the wheel holds benchmarks/__main__.py" in problems
    good = tmp_path / "good.whl"
    with zipfile.ZipFile(good, "w") as wheel:
        for name in (
            "atlas_mcp/__main__.py",
            "atlas_mcp/py.typed",
            "atlas_mcp/emulator/app.py",
            "atlas_mcp/emulator/fixtures/catalogue-entry.json",
            "atlascloud_mcp-0.1.0.dist-info/METADATA",
        ):
            wheel.writestr(name, "")
    assert check_contents(good) == []
