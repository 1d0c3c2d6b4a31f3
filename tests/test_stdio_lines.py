"""Every line a stdio client writes is answered (atlas_mcp.server.stdio): a line ``answer_for`` lets through must be
one the SDK takes as a request (which it answers) or a true notification (which wants no answer). The quick look
that lets plain lines through without the SDK's adapter (issue 26) is held to that here, on lines of every shape."""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_mcp.server.stdio import answer_for

_ids = st.integers() | st.text(max_size=8) | st.none() | st.booleans() | st.floats(allow_nan=False) | st.just([])
_members: dict[str, st.SearchStrategy[Any]] = {
    "jsonrpc": st.sampled_from(["2.0", "1.0", 2, None]),
    "id": _ids,
    "method": st.text(max_size=12) | st.integers() | st.none(),
    "params": st.none() | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2) | st.just([1]) | st.text(),
    "result": st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    "extra": st.integers(),
}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.sets(st.sampled_from(sorted(_members)), min_size=1))
    return {name: draw(_members[name]) for name in sorted(chosen)}


@settings(max_examples=600, deadline=None)
@given(message=messages())
def test_a_line_let_through_is_one_the_sdk_takes_and_answers(message: dict[str, Any]) -> None:
    line = json.dumps(message)
    if answer_for(line) is not None:
        return  # answered here
    taken = types.jsonrpc_message_adapter.validate_json(line, by_name=False)  # raises if the SDK would drop it
    if isinstance(taken, types.JSONRPCNotification):
        assert "id" not in message  # a request the SDK would mistake for a notification is never let through


def test_a_plain_request_is_let_through() -> None:
    line = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "x"}})
    assert answer_for(line) is None
    # An id the SDK would drop (taking the line for a notification) is answered here.
    assert answer_for(json.dumps({"jsonrpc": "2.0", "id": None, "method": "ping"})) is not None
