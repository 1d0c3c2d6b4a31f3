"""Atlas's JSON envelopes and error bodies, with the inconsistencies clients must tolerate.

Atlas is not uniform: success envelopes say "message" on some endpoints and "msg" on
others, `code` is sometimes the string "200", and errors put their text under "message",
"msg" or "error". The emulator reproduces each variant where Atlas was seen to use it.
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.responses import JSONResponse

TextKey = Literal["message", "msg", "error"]

UNAUTHORIZED = "Unauthorized: invalid or missing API key"
INSUFFICIENT_BALANCE = "Insufficient balance, please top up"
PREDICTION_NOT_FOUND = "prediction not found"


def success(data: Any, *, key: TextKey = "message", code: int | str = 200) -> JSONResponse:
    return JSONResponse({"code": code, key: "success", "data": data})


def error(status: int, text: str, *, key: TextKey = "message", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, key: text}, status_code=status, headers=headers)


def unauthorized() -> JSONResponse:
    return error(401, UNAUTHORIZED)


def insufficient_balance() -> JSONResponse:
    return error(402, INSUFFICIENT_BALANCE, key="msg")


def not_found(text: str = PREDICTION_NOT_FOUND) -> JSONResponse:
    return error(404, text, key="error")
