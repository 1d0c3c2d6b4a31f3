"""The account tools: the balance, and the usage and cost reports. Free, read-only, and all need the key.

Atlas documents the reports' parameters but not the keys of their rows, so a row is read without assuming
names: text values are the group's labels (model, model type, key), numbers and ``{"value", "currency"}``
amounts are its figures. Totals are the sums of exactly the rows returned.
"""

import datetime
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from atlas_mcp.atlas import Balance, CreditGrant, Money, UsagePage, UsageReport
from atlas_mcp.config import Settings
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import InputError
from atlas_mcp.server import icons
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import LONG_RESULT, MODEL_ID, READING, as_tool_errors, state_of
from atlas_mcp.spend.ownership import require_shared_usage

__all__ = [
    "MAX_RANGE_DAYS",
    "BalanceResult",
    "UsageResult",
    "date_range",
    "register_get_balance",
    "register_get_costs",
    "register_get_usage",
    "report",
]

MAX_RANGE_DAYS = 180
DEFAULT_DAYS = 7
_SHOWN_ROWS = 40  # rows in the text table; the structured result has them all


class CreditGrantInfo(Shown):
    """Credit Atlas extends to the account beyond its balance."""

    status: str | None = Field(default=None, description="Atlas's word for the grant (e.g. active).")
    granted: float | None = Field(default=None, description="How much credit was granted.")
    used: float | None = Field(default=None, description="How much of it is used.")
    remaining_overdraft: float | None = Field(default=None, description="How much more may be overdrawn.")
    overdrawn: float | None = Field(default=None, description="How much is overdrawn now.")


class BalanceResult(Shown):
    """The account's money, in the account's currency."""

    available: float | None = Field(description="What can be spent now (cash + bonus + subscription bonus).")
    cash: float | None = Field(default=None, description="Money paid in.")
    bonus: float | None = Field(default=None, description="Credit granted by Atlas.")
    subscription_bonus: float | None = Field(default=None, description="Credit that comes with a subscription.")
    frozen: float | None = Field(default=None, description="Held for running jobs.")
    currency: str = Field(description="The currency of every amount, e.g. USD.")
    account: str | None = Field(default=None, description="Atlas's id of the account.")
    account_name: str | None = Field(default=None, description="The account's name.")
    account_type: str | None = Field(default=None, description="The kind of account (personal, team...).")
    credit_grant: CreditGrantInfo | None = Field(default=None, description="Credit beyond the balance, if any.")
    adds_up: bool | None = Field(
        default=None, description="Whether cash + bonus + subscription bonus equals available (None: not all given)."
    )


class UsageRow(Shown):
    date: str = Field(description="The day (UTC), YYYY-MM-DD.")
    partial: bool = Field(description="The day is not over (or not fully counted) yet.")
    group: dict[str, str] = Field(description="What the row counts, by the group_by dimensions (model, model_type...).")
    figures: dict[str, float] = Field(description="The row's numbers (requests, tokens, images... or the amount).")


class UsageResult(Shown):
    report: Literal["usage", "costs"]
    start_date: str = Field(description="First day counted.")
    end_date: str = Field(description="The day after the last one counted (exclusive).")
    group_by: list[str]
    rows: list[UsageRow]
    totals: dict[str, float] = Field(description="Each figure summed over the rows of this page.")
    currency: str | None = Field(default=None, description="The currency of amounts (costs).")
    has_more: bool = Field(description="More rows exist: pass next_page as page to get them.")
    next_page: str | None = None


def date_range(start_date: str | None, end_date: str | None, *, today: datetime.date) -> tuple[str, str]:
    """The range to ask for, checked as Atlas checks it: ``YYYY-MM-DD``, the end exclusive and after the start,
    at most 180 days. Without dates: the last 7 days, today included. Raises :class:`InputError` saying how to
    fix the call; nothing is sent."""
    start = _day(start_date, "start_date") if start_date else None
    end = _day(end_date, "end_date") if end_date else None
    if end is None:
        tomorrow = today + datetime.timedelta(days=1)
        if start is None:
            end = tomorrow
        else:  # up to today, within the longest range, and at least the one day asked for
            longest = start + datetime.timedelta(days=MAX_RANGE_DAYS)
            end = max(min(longest, tomorrow), start + datetime.timedelta(days=1))
    if start is None:
        start = end - datetime.timedelta(days=DEFAULT_DAYS)
    if end <= start:
        raise InputError(
            f"end_date ({end}) must be after start_date ({start}): end_date is exclusive, so for the single day "
            f"{start} pass end_date={start + datetime.timedelta(days=1)}. Nothing was sent."
        )
    days = (end - start).days
    if days > MAX_RANGE_DAYS:
        raise InputError(
            f"The range {start} to {end} covers {days} days; Atlas reports at most {MAX_RANGE_DAYS} at a time. Ask "
            f"in parts, e.g. start_date={start} end_date={start + datetime.timedelta(days=MAX_RANGE_DAYS)} first. "
            "Nothing was sent."
        )
    return start.isoformat(), end.isoformat()


def _day(value: str, name: str) -> datetime.date:
    text = value.strip()
    try:
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{name} must be a calendar date written YYYY-MM-DD (e.g. 2026-06-01), got {value!r}. Nothing was sent."
        ) from None


def _amount(money: Money | None) -> float | None:
    return money.value if money is not None else None


def balance_result(balance: Balance) -> CallToolResult:
    grant = balance.credit_grant
    amounts = [balance.available, balance.cash, balance.bonus, balance.subscription_bonus, balance.frozen]
    if grant is not None:
        amounts += [grant.granted, grant.used, grant.remaining_overdraft, grant.overdrawn]
    currency = next((m.currency for m in amounts if m and m.currency), "USD")
    parts = (balance.cash, balance.bonus, balance.subscription_bonus)
    adds_up = None
    if balance.available.value is not None and all(m is not None and m.value is not None for m in parts):
        adds_up = abs(sum(m.value for m in parts if m and m.value is not None) - balance.available.value) < 0.005
    account = balance.account
    result = BalanceResult(
        available=balance.available.value,
        cash=_amount(balance.cash),
        bonus=_amount(balance.bonus),
        subscription_bonus=_amount(balance.subscription_bonus),
        frozen=_amount(balance.frozen),
        currency=currency.upper(),
        account=account.id if account else None,
        account_name=account.name if account else None,
        account_type=account.type if account else None,
        credit_grant=_grant(grant),
        adds_up=adds_up,
    )
    return CallToolResult(
        content=[TextContent(text=_balance_text(result))], structured_content=result.model_dump(mode="json")
    )


def _grant(grant: CreditGrant | None) -> CreditGrantInfo | None:
    if grant is None:
        return None
    return CreditGrantInfo(
        status=grant.status,
        granted=_amount(grant.granted),
        used=_amount(grant.used),
        remaining_overdraft=_amount(grant.remaining_overdraft),
        overdrawn=_amount(grant.overdrawn),
    )


def _balance_text(result: BalanceResult) -> str:
    def shown(amount: float | None) -> str:
        return "unknown" if amount is None else f"{amount:,.2f} {result.currency}"

    lines = []
    if result.account_name or result.account:
        kind = f" ({result.account_type} account)" if result.account_type else ""
        lines.append(f"Account: {result.account_name or result.account}{kind}")
    named = (("cash", result.cash), ("bonus", result.bonus), ("subscription bonus", result.subscription_bonus))
    parts = [f"{name} {shown(amount)}" for name, amount in named if amount is not None]
    line = f"Available: {shown(result.available)}"
    if parts:
        line += f" = {' + '.join(parts)}" if result.adds_up else f" ({', '.join(parts)})"
    lines.append(line)
    if result.adds_up is False:
        lines.append("(Atlas's parts do not add up to its available figure; available is what can be spent.)")
    if result.frozen:
        lines.append(f"Frozen (held for running jobs): {shown(result.frozen)}")
    grant = result.credit_grant
    if grant is not None and any(v for v in (grant.granted, grant.used, grant.remaining_overdraft, grant.overdrawn)):
        facts = [
            f"{name} {shown(amount)}"
            for name, amount in (
                ("granted", grant.granted),
                ("used", grant.used),
                ("remaining overdraft", grant.remaining_overdraft),
                ("overdrawn", grant.overdrawn),
            )
            if amount is not None
        ]
        status = f" ({grant.status})" if grant.status else ""
        lines.append(f"Credit grant{status}: {', '.join(facts)}")
    return "\n".join(lines)


def _row(date: str, partial: bool, raw: dict[str, Any], secrets_: Sequence[str]) -> tuple[UsageRow, set[str]]:
    """One row of Atlas's report: its labels and its figures, and the currencies its amounts are in."""
    group: dict[str, str] = {}
    figures: dict[str, float] = {}
    currencies: set[str] = set()
    for key, value in raw.items():
        if key == "object":
            continue
        if isinstance(value, dict) and "value" in value:
            amount = Money.model_validate(value)
            if amount.value is not None:
                figures[key] = amount.value
                if amount.currency:
                    currencies.add(amount.currency.upper())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[key] = float(value)
        elif isinstance(value, str):
            group[key] = "[redacted]" if any(secret and secret in value for secret in secrets_) else value
    return UsageRow(date=date, partial=partial, group=group, figures=figures), currencies


def usage_result(
    report: UsageReport, page: UsagePage, *, start: str, end: str, group_by: list[str], secrets_: Sequence[str]
) -> CallToolResult:
    rows: list[UsageRow] = []
    currencies: set[str] = set()
    for bucket in page.buckets:
        for raw in bucket.results:
            row, found = _row(bucket.date, bucket.partial, raw, secrets_)
            rows.append(row)
            currencies |= found
    totals: dict[str, float] = {}
    for row in rows:
        for name, value in row.figures.items():
            totals[name] = totals.get(name, 0.0) + value
    totals = {name: round(value, 9) for name, value in totals.items()}
    result = UsageResult(
        report=report,
        start_date=start,
        end_date=end,
        group_by=group_by,
        rows=rows,
        totals=totals,
        currency=", ".join(sorted(currencies)) or None,
        has_more=page.has_more,
        next_page=page.next_page,
    )
    return CallToolResult(content=[TextContent(text=_table(result))], structured_content=result.model_dump(mode="json"))


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value.is_integer() else f"{value:.6g}"


def _table(result: UsageResult) -> str:
    what = "Usage" if result.report == "usage" else "Costs"
    head = f"{what} from {result.start_date} to {result.end_date} (end exclusive)"
    if result.currency:
        head += f", in {result.currency}"
    if not result.rows:
        return f"{head}: nothing was used in this range." + (" More pages follow." if result.has_more else "")
    labels = list(dict.fromkeys(name for row in result.rows for name in row.group))
    figures = list(dict.fromkeys(name for row in result.rows for name in row.figures))
    columns = ["date", *labels, *figures]
    lines = [f"{head}:", " | ".join(columns), " | ".join("---" for _ in columns)]
    for row in result.rows[:_SHOWN_ROWS]:
        date = row.date + (" (so far)" if row.partial else "")
        cells = [date, *(row.group.get(name, "") for name in labels)]
        cells += [_figure(row.figures[name]) if name in row.figures else "" for name in figures]
        lines.append(" | ".join(cells))
    if len(result.rows) > _SHOWN_ROWS:
        lines.append(f"… and {len(result.rows) - _SHOWN_ROWS} more rows (all are in the structured result).")
    totals = [_figure(result.totals[name]) if name in result.totals else "" for name in figures]
    lines.append(" | ".join(["total", *("" for _ in labels), *totals]))
    if result.has_more:
        lines.append(f'More rows follow: call again with page="{result.next_page}".')
    return "\n".join(lines)


GroupBy = Annotated[
    list[Literal["model_type", "model", "api_key"]] | None,
    Field(max_length=3, description="Break the days down by these (omit for one total per day)."),
]
ModelTypes = Annotated[
    list[Literal["image", "video", "audio", "text"]] | None,
    Field(max_length=4, description="Only these model types."),
]
ModelIds = Annotated[
    list[Annotated[str, Field(max_length=200, pattern=MODEL_ID)]] | None,
    Field(max_length=100, description="Only these models (ids as list_models gives them)."),
]
StartDate = Annotated[
    str | None,
    Field(max_length=40, description=f"First day (UTC), YYYY-MM-DD. Default: {DEFAULT_DAYS} days before end_date."),
]
EndDate = Annotated[
    str | None,
    Field(
        max_length=40,
        description=f"The day AFTER the last one (exclusive), YYYY-MM-DD, at most {MAX_RANGE_DAYS} days after "
        "start_date. Default: tomorrow (so today is included).",
    ),
]
Limit = Annotated[int, Field(ge=1, le=1000, description="At most this many rows per page.")]
Page = Annotated[
    str | None, Field(max_length=200, description="The next_page value of an earlier answer, for the next rows.")
]


async def report(
    ctx: Context,
    kind: UsageReport,
    start_date: str | None,
    end_date: str | None,
    group_by: Sequence[str] | None,
    model_types: Sequence[str] | None,
    model_ids: Sequence[str] | None,
    limit: int,
    page: str | None,
) -> CallToolResult:
    state = state_of(ctx)
    with as_tool_errors():
        require_shared_usage(state)
        today = datetime.datetime.now(datetime.timezone.utc).date()
        start, end = date_range(start_date, end_date, today=today)
        groups = list(dict.fromkeys(group_by or []))
        found = await state.atlas.usage(
            kind,
            start_date=start,
            end_date=end,
            group_by=groups,
            model_types=model_types or (),
            model_ids=model_ids or (),
            limit=limit,
            page=page,
        )
        return usage_result(kind, found, start=start, end=end, group_by=groups, secrets_=state.secrets)


def register_get_balance(shelf: ToolShelf, settings: Settings) -> None:
    """Register get_balance (free)."""

    @shelf.tool(
        title="Get balance",
        icons=icons.SERVER,
        description=(
            "The Atlas Cloud account's balance (free): the account, available = cash + bonus + subscription bonus, "
            "frozen amounts, any credit grant; currency."
        ),
        annotations=READING,
    )
    async def get_balance(ctx: Context) -> Annotated[CallToolResult, BalanceResult]:
        with as_tool_errors():
            return balance_result(await state_of(ctx).atlas.balance())


def register_get_usage(shelf: ToolShelf, settings: Settings) -> None:
    """Register get_usage (free)."""

    @shelf.tool(
        title="Get usage",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "How much the account used Atlas Cloud models, per day (free): requests, tokens, images, videos. "
            f"Dates are YYYY-MM-DD (UTC), end_date exclusive, at most {MAX_RANGE_DAYS} days; default: the last "
            f"{DEFAULT_DAYS} days. group_by breaks days down by model_type, model or api_key. Returns the rows and "
            "their totals."
        ),
        annotations=READING,
    )
    async def get_usage(
        ctx: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        group_by: GroupBy = None,
        model_types: ModelTypes = None,
        model_ids: ModelIds = None,
        limit: Limit = 100,
        page: Page = None,
    ) -> Annotated[CallToolResult, UsageResult]:
        return await report(ctx, "usage", start_date, end_date, group_by, model_types, model_ids, limit, page)


def register_get_costs(shelf: ToolShelf, settings: Settings) -> None:
    """Register get_costs (free)."""

    @shelf.tool(
        title="Get costs",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "What the account spent on Atlas Cloud models, per day (free). Dates are YYYY-MM-DD (UTC), end_date "
            f"exclusive, at most {MAX_RANGE_DAYS} days; default: the last {DEFAULT_DAYS} days. group_by breaks days "
            "down by model_type, model or api_key. Returns the rows and their total."
        ),
        annotations=READING,
    )
    async def get_costs(
        ctx: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        group_by: GroupBy = None,
        model_types: ModelTypes = None,
        model_ids: ModelIds = None,
        limit: Limit = 100,
        page: Page = None,
    ) -> Annotated[CallToolResult, UsageResult]:
        return await report(ctx, "costs", start_date, end_date, group_by, model_types, model_ids, limit, page)
