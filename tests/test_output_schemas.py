"""The tools' output schemas are read from ``atlas_mcp/server/output_schemas.json`` at start instead of being
generated from their models (issue 26: that was half of building the server). This keeps the file equal to what the
SDK itself derives from each model, so no schema can drift; ``uv run python -m tests.test_output_schemas`` writes
it afresh after a model changes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from atlas_mcp.config import Settings
from atlas_mcp.server.shelf import SCHEMAS_FILE, derived_output_schema, output_model_of
from atlas_mcp.server.tools import REGISTRY

_F = TypeVar("_F", bound=Callable[..., Any])


class _Models:
    """Stands in for the shelf to find each tool's output model, building no tool."""

    def __init__(self) -> None:
        self.found: list[type[Any]] = []

    def tool(self, *_args: Any, **_kwargs: Any) -> Callable[[_F], _F]:
        def decorator(fn: _F) -> _F:
            model = output_model_of(fn)
            if model is not None and model not in self.found:
                self.found.append(model)
            return fn

        return decorator


def derived() -> dict[str, dict[str, Any]]:
    models = _Models()
    for register in REGISTRY:
        register(models, Settings())  # type: ignore[arg-type]  # only its tool() is used
    return {model.__name__: derived_output_schema(model) for model in models.found}


def test_the_stored_output_schemas_are_what_the_sdk_derives_from_the_models() -> None:
    stored = json.loads(SCHEMAS_FILE.read_text(encoding="utf-8"))
    fresh = derived()
    assert list(stored) == list(fresh), "run: uv run python -m tests.test_output_schemas"
    for name, schema in fresh.items():
        # Key order too: tools/list must stay byte-identical (tests/test_tools_list_snapshot.py).
        assert json.dumps(stored[name]) == json.dumps(schema), f"{name}: run uv run python -m tests.test_output_schemas"


if __name__ == "__main__":
    SCHEMAS_FILE.write_text(json.dumps(derived(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMAS_FILE}", file=sys.stderr)
