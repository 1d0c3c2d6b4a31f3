"""What Atlas looks like, as recorded once in ``tests/fixtures/atlas/``: schemas, answers and requests.

The emulator serves these documents (its model schemas are the fixture files themselves) and shapes its
answers after them; the client's tests parse the same files. In a checkout they are read where they live;
an installed wheel carries a copy as ``atlas_mcp/emulator/fixtures/`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

__all__ = ["fixtures_dir", "load"]

_PACKAGED = Path(__file__).with_name("fixtures")
_CHECKOUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "atlas"


@functools.cache
def fixtures_dir() -> Path:
    for candidate in (_PACKAGED, _CHECKOUT):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"the Atlas fixtures are missing: looked in {_PACKAGED} and {_CHECKOUT}")


@functools.cache
def _parsed(name: str) -> Any:
    return json.loads((fixtures_dir() / name).read_text(encoding="utf-8"))


def load(name: str) -> Any:
    """A fresh copy of one fixture document (``"answers/balance.json"``), safe to change."""
    return copy.deepcopy(_parsed(name))
