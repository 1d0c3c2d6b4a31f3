"""The emulator's own controls under ``/_emulator/``: the requests it recorded, the faults and prediction plans
queued for the next answers, a reset, the account balance. Tests, the demo and the benchmarks drive Atlas's
behaviour through these; Atlas has nothing like them.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atlas_mcp.emulator import wire
from atlas_mcp.emulator.faults import Fault
from atlas_mcp.emulator.predictions import PredictionPlan
from atlas_mcp.emulator.state import EmulatorState

__all__ = ["Controls", "control_routes"]

_FAULTS = TypeAdapter(Fault | list[Fault])
_PLANS = TypeAdapter(PredictionPlan | list[PredictionPlan])


class Controls:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def list_requests(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "headers": r.redacted_headers(),
                    "body_size": r.body_size,
                    "at": r.at,
                }
                for r in self.state.requests
            ]
        )

    async def clear_requests(self, request: Request) -> Response:
        self.state.clear_requests()
        return wire.success(None)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse(TypeAdapter(list[Fault]).dump_python(self.state.faults, mode="json"))

    async def add_faults(self, request: Request) -> Response:
        try:
            parsed = _FAULTS.validate_json(await request.body())
        except (ValidationError, ValueError) as exc:
            return wire.error(400, f"not a Fault or list of Faults: {exc}")
        faults = parsed if isinstance(parsed, list) else [parsed]
        for fault in faults:
            self.state.add_fault(fault)
        return wire.success({"added": len(faults)})

    async def clear_faults(self, request: Request) -> Response:
        self.state.clear_faults()
        return wire.success(None)

    async def add_plans(self, request: Request) -> Response:
        try:
            parsed = _PLANS.validate_json(await request.body())
        except (ValidationError, ValueError) as exc:
            return wire.error(400, f"not a PredictionPlan or list of PredictionPlans: {exc}")
        plans = parsed if isinstance(parsed, list) else [parsed]
        for plan in plans:
            self.state.plan_next(plan)
        return wire.success({"added": len(plans)})

    async def clear_plans(self, request: Request) -> Response:
        self.state.clear_plans()
        return wire.success(None)

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return wire.success(None)

    async def balance(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                dollars = json.loads(await request.body())["balance"]
                if isinstance(dollars, bool) or not isinstance(dollars, (int, float)):
                    raise TypeError(dollars)
            except (ValueError, KeyError, TypeError):
                return wire.error(400, 'send {"balance": <dollars>}')
            self.state.balance = float(dollars)
        return wire.success({"balance": self.state.balance})


def control_routes(state: EmulatorState) -> list[Route]:
    controls = Controls(state)
    return [
        Route("/_emulator/requests", controls.list_requests, methods=["GET"]),
        Route("/_emulator/requests", controls.clear_requests, methods=["DELETE"]),
        Route("/_emulator/faults", controls.list_faults, methods=["GET"]),
        Route("/_emulator/faults", controls.add_faults, methods=["POST"]),
        Route("/_emulator/faults", controls.clear_faults, methods=["DELETE"]),
        Route("/_emulator/plans", controls.add_plans, methods=["POST"]),
        Route("/_emulator/plans", controls.clear_plans, methods=["DELETE"]),
        Route("/_emulator/reset", controls.reset, methods=["POST"]),
        Route("/_emulator/balance", controls.balance, methods=["GET", "PUT"]),
    ]
