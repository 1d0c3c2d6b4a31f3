"""The account's answers as Atlas sends them: the balance (with its credit grant and subscription bonus) and the
daily usage and cost reports. Tolerant of every live shape (``../shared/reference/atlas-api.md``): money comes as
``{"value": "125.500000", "currency": "usd"}``, a bare number or a numeric string.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator

from atlas_mcp.atlas.models import Wire, as_number

__all__ = ["AccountInfo", "Balance", "CreditGrant", "Money", "UsageBucket", "UsagePage"]


class Money(Wire):
    value: float | None = None
    currency: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {"value": as_number(raw.get("value", raw.get("amount"))), "currency": raw.get("currency")}
        return {"value": as_number(raw)}  # a bare number or numeric string


class AccountInfo(Wire):
    """Whose balance it is: ``{id, name, type}`` (an older shape gave the id alone)."""

    id: str | None = None
    name: str | None = None
    type: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {key: None if raw.get(key) is None else str(raw[key]) for key in ("id", "name", "type")}
        return {"id": None if raw is None else str(raw)}


class CreditGrant(Wire):
    """Credit Atlas extends beyond the balance: ``{status, granted, used, remaining_overdraft, overdrawn}``, each
    amount a :class:`Money` (an older shape gave one amount, read as ``granted``)."""

    status: str | None = None
    granted: Money | None = None
    used: Money | None = None
    remaining_overdraft: Money | None = None
    overdrawn: Money | None = None  # an amount; a bare true/false is kept as 1/0 of no currency

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not ({"status", "granted", "used"} & set(raw)):
            return {"granted": raw}
        data = dict(raw)
        if isinstance(data.get("overdrawn"), bool):
            data["overdrawn"] = {"value": int(data["overdrawn"])}
        if data.get("status") is not None:
            data["status"] = str(data["status"])
        return data


class Balance(Wire):
    """The account's money (``/public/v1/balance``); each amount is ``{"value", "currency"}`` or a bare number."""

    account: AccountInfo | None = None
    scope: str | None = None
    available: Money = Field(default_factory=Money)
    cash: Money | None = None
    bonus: Money | None = None
    subscription_bonus: Money | None = None
    frozen: Money | None = None
    credit_grant: CreditGrant | None = None

    @field_validator("scope", mode="before")
    @classmethod
    def _to_text(cls, value: Any) -> str | None:
        return None if value is None else str(value)


class UsageBucket(Wire):
    """One day of ``/public/v1/model-usage`` or ``/public/v1/model-costs``: its rows as Atlas wrote them.

    The rows' keys are not documented; :mod:`atlas_mcp.server.tools.account` reads labels (strings) and amounts
    (numbers, numeric strings, ``{"value", "currency"}``) out of them without assuming names.
    """

    date: str
    partial: bool = False  # the day is not over (or not fully counted) yet
    results: tuple[dict[str, Any], ...] = ()

    @field_validator("results", mode="before")
    @classmethod
    def _rows(cls, value: Any) -> Any:
        return tuple(row for row in value if isinstance(row, dict)) if isinstance(value, list) else ()


class UsagePage(Wire):
    """A page of daily buckets; ``next_page`` is Atlas's opaque cursor for the next one."""

    scope: str | None = None
    buckets: tuple[UsageBucket, ...] = Field(default=(), validation_alias=AliasChoices("data", "buckets"))
    has_more: bool = False
    next_page: str | None = None

    @field_validator("buckets", mode="before")
    @classmethod
    def _no_buckets(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("next_page", mode="before")
    @classmethod
    def _cursor(cls, value: Any) -> str | None:
        return None if value in (None, "") else str(value)
