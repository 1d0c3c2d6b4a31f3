"""The account's usage and costs (``/public/v1/model-usage``, ``/public/v1/model-costs``), counted from what the
emulator itself ran: every prediction that was billed (planned failures are not) and every chat answer.

The page's shape is ``answers/model-usage.json`` and ``answers/model-costs.json``; the query is validated the
way Atlas answers 400s (``answers/usage.bad-range.json``): dates are ``YYYY-MM-DD``, the end is exclusive and
after the start, and the range covers at most 180 days.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from atlas_mcp.emulator.fixtures import load

__all__ = ["MAX_DAYS", "Charge", "UsageQuery", "key_label", "parse_query", "usage_page"]

MAX_DAYS = 180
GROUPS = ("model_type", "model", "api_key")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURSOR = re.compile(r"p([1-9]\d{0,6})")
_COUNTS = ("requests", "images", "videos", "audios", "input_tokens", "output_tokens")


def key_label(token: str) -> str:
    """How a report names an API key: a stable label, never the key."""
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Charge:
    """One billed call as the reports count it."""

    at: float  # wall clock
    model: str
    model_type: str  # lower case, as the reports write it: image, video, audio, text
    api_key: str  # key_label() of the caller's key
    cost: float
    images: int = 0
    videos: int = 0
    audios: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def day(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.at, datetime.timezone.utc).date()


class BadQuery(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UsageQuery:
    start: datetime.date
    end: datetime.date  # exclusive
    scope: str
    group_by: tuple[str, ...]
    model_types: tuple[str, ...]
    model_ids: tuple[str, ...]
    limit: int
    offset: int


def _listed(query: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    """A list parameter, as ``name[]=a&name[]=b`` (Atlas's form) or ``name=a,b``."""
    values = [*query.get(f"{name}[]", ()), *(part for item in query.get(name, ()) for part in item.split(","))]
    return tuple(value.strip() for value in values if value.strip())


def _date(query: Mapping[str, Sequence[str]], name: str) -> datetime.date:
    given = (query.get(name) or [""])[0]
    if not given:
        raise BadQuery(f"{name} is required, as YYYY-MM-DD")
    try:
        if not _DATE.fullmatch(given):
            raise ValueError(given)
        return datetime.date.fromisoformat(given)
    except ValueError:
        raise BadQuery(f"{name} must be a date as YYYY-MM-DD, got {given!r}") from None


def parse_query(query: Mapping[str, Sequence[str]]) -> UsageQuery:
    start, end = _date(query, "start_date"), _date(query, "end_date")
    if end <= start:
        raise BadQuery("end_date must be after start_date (end_date is exclusive)")
    if (end - start).days > MAX_DAYS:
        raise BadQuery(load("answers/usage.bad-range.json")["body"]["message"])
    scope = (query.get("scope") or ["self"])[0]
    if scope not in ("self", "account"):
        raise BadQuery(f"scope must be self or account, got {scope!r}")
    group_by = _listed(query, "group_by")
    if unknown := [name for name in group_by if name not in GROUPS]:
        raise BadQuery(f"group_by takes {', '.join(GROUPS)}; got {unknown[0]!r}")
    limit_text = (query.get("limit") or ["100"])[0]
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise BadQuery(f"limit must be an integer from 1 to 1000, got {limit_text!r}")
    page = (query.get("page") or [""])[0]
    cursor = _CURSOR.fullmatch(page) if page else None
    if page and cursor is None:
        raise BadQuery("page must be the next_page cursor of an earlier answer")
    limit = int(limit_text)
    return UsageQuery(
        start=start,
        end=end,
        scope=scope,
        group_by=tuple(dict.fromkeys(group_by)),
        model_types=tuple(value.lower() for value in _listed(query, "model_types")),
        model_ids=_listed(query, "model_ids"),
        limit=limit,
        offset=(int(cursor[1]) - 1) * limit if cursor else 0,
    )


def usage_page(report: Literal["usage", "costs"], query: UsageQuery, charges: Iterable[Charge]) -> dict[str, Any]:
    """The page of daily buckets for ``query``: one row per day and group, a day without usage left out."""
    groups: dict[tuple[datetime.date, tuple[str, ...]], list[Charge]] = {}
    for charge in charges:
        if not query.start <= charge.day < query.end:
            continue
        if (query.model_types and charge.model_type not in query.model_types) or (
            query.model_ids and charge.model not in query.model_ids
        ):
            continue
        labels = tuple(str(getattr(charge, name)) for name in query.group_by)
        groups.setdefault((charge.day, labels), []).append(charge)
    keys = sorted(groups)
    shown = keys[query.offset : query.offset + query.limit]
    today = datetime.datetime.now(datetime.timezone.utc).date()
    answer: dict[str, Any] = load(f"answers/model-{report}.json")["body"]
    buckets: dict[datetime.date, dict[str, Any]] = {}
    for day, labels in shown:
        bucket = buckets.setdefault(day, _bucket(day, partial=day >= today))
        row: dict[str, Any] = dict(zip(query.group_by, labels, strict=True))
        billed = groups[(day, labels)]
        if report == "usage":
            row["requests"] = len(billed)
            row |= {name: sum(getattr(c, name) for c in billed) for name in _COUNTS if name != "requests"}
        else:
            row["amount"] = {"value": _dollars(sum(c.cost for c in billed)), "currency": "USD"}
        bucket["results"].append(row)
    more = query.offset + query.limit < len(keys)
    answer |= {
        "scope": query.scope,
        "data": list(buckets.values()),
        "has_more": more,
        "next_page": f"p{query.offset // query.limit + 2}" if more else None,
    }
    return answer


def _bucket(day: datetime.date, *, partial: bool) -> dict[str, Any]:
    after = day + datetime.timedelta(days=1)
    return {
        "object": "bucket",
        "date": day.isoformat(),
        "start_at": f"{day.isoformat()}T00:00:00Z",
        "end_at": f"{after.isoformat()}T00:00:00Z",
        "partial": partial,
        "results": [],
    }


def _dollars(amount: float) -> str:
    return f"{amount:.10f}".rstrip("0").rstrip(".") or "0"
