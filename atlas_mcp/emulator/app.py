"""The HTTP face of the emulator: Atlas's routes, public storage, and test controls.

Routes map one-to-one onto Atlas endpoints (see /work/shared/reference/atlas-api.md);
the storage routes stand in for Atlas's public file host; `/_emulator/*` lets a test
process that does not hold the Python object arm faults and read the request log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote

import anyio
from anyio import to_thread
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from atlas_mcp.emulator import wire
from atlas_mcp.emulator.catalogue import MODELS, ModelType, catalogue_entry, find_model, schema_document
from atlas_mcp.emulator.faults import Fault
from atlas_mcp.emulator.images import render_png
from atlas_mcp.emulator.media import render_audio, render_video
from atlas_mcp.emulator.middleware import RecordAndFaultMiddleware
from atlas_mcp.emulator.predictions import Prediction, PredictionPlan
from atlas_mcp.emulator.state import EmulatorState, Upload
from atlas_mcp.emulator.uploads import UploadError, safe_filename, store_upload
from atlas_mcp.emulator.validation import InvalidRequest, parse_submission

logger = logging.getLogger("atlas_mcp.emulator")

# enable_sync_mode holds the request open until the prediction ends, but never longer than this.
SYNC_WAIT_CAP_SECONDS = 120.0
MAX_SEED = 2_147_483_647
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_OUTPUT_NAME = re.compile(r"(\d{1,2})\.([a-z0-9]+)")
_MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "wav": "audio/wav"}
_FAULTS = TypeAdapter(Fault | list[Fault])
_PLANS = TypeAdapter(PredictionPlan | list[PredictionPlan])


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _render_output(prediction: Prediction, index: int) -> bytes:
    submission = prediction.submission
    model = submission.model
    if model.type == "Audio":
        return render_audio(
            text=submission.params["text"], speed=float(submission.params["speed"]), seed=prediction.seed
        )
    render = render_video if model.type == "Video" else render_png
    return render(
        prompt=submission.params["prompt"],
        seed=prediction.seed,
        index=index,
        width=submission.width,
        height=submission.height,
        model=model.id,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Concurrent first downloads may both render; each writes aside and renames over the other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _Endpoints:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        expected = self.state.config.api_key
        return expected is None or secrets.compare_digest(token.encode(), expected.encode())

    def _answer(self, prediction: Prediction, origin: str) -> JSONResponse:
        """A prediction as GET answers it: failed ones come with the plan's HTTP status (500 on Atlas)."""
        payload = prediction.payload(origin)
        if payload["status"] == "failed":
            body = {"code": 500, "message": prediction.plan.fail, "data": payload}
            return JSONResponse(body, status_code=prediction.plan.failure_http_status)
        return wire.success(payload)

    # --- Atlas API ------------------------------------------------------------------------

    async def generate_image(self, request: Request) -> Response:
        return await self._generate(request, "Image")

    async def generate_video(self, request: Request) -> Response:
        return await self._generate(request, "Video")

    async def generate_audio(self, request: Request) -> Response:
        return await self._generate(request, "Audio")

    async def _generate(self, request: Request, endpoint_type: ModelType) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        try:
            body = await request.json()
        except ValueError as exc:
            return wire.error(400, f"request body must be JSON: {exc}")
        try:
            submission = parse_submission(body, endpoint_type)
        except InvalidRequest as exc:
            return wire.error(400, exc.message)
        admitted = self.state.admit(submission.model.price * submission.num_outputs)
        if admitted is None:
            return wire.insufficient_balance()
        plan, sequence = admitted
        seed = int(submission.params.get("seed", -1))
        if seed == -1:
            seed = secrets.randbelow(MAX_SEED + 1)
        prediction = Prediction(
            id=secrets.token_hex(16),
            submission=submission,
            request_body=body,
            seed=seed,
            plan=plan,
            seconds=self.state.config.prediction_seconds if plan.seconds is None else plan.seconds,
            created_at=time.time(),
            started=time.monotonic(),
            sequence=sequence,
        )
        self.state.add_prediction(prediction)
        if submission.ignored_keys:
            logger.debug("prediction %s ignores keys %s", prediction.id, ", ".join(submission.ignored_keys))
        if submission.params.get("enable_sync_mode") is True:
            await anyio.sleep(min(prediction.remaining(), SYNC_WAIT_CAP_SECONDS))
            return self._answer(prediction, _origin(request))
        return wire.success(prediction.payload(_origin(request)))

    async def get_prediction(self, request: Request) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        prediction_id: str = request.path_params["prediction_id"]
        if not _HEX_ID.fullmatch(prediction_id):
            return wire.error(400, f"invalid prediction id {prediction_id!r}: expected 32 lowercase hex characters")
        prediction = self.state.get_prediction(prediction_id)
        if prediction is None:
            return wire.not_found()
        return self._answer(prediction, _origin(request))

    async def history(self, request: Request) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        query = request.query_params
        try:
            page_no = int(query.get("no") or 1)
            page_size = int(query.get("size") or 20)
        except ValueError:
            return wire.error(400, "no and size must be integers (no from 1, size 1-50)")
        if page_no < 1:
            return wire.error(400, f"no must be at least 1, got {page_no}")
        if not 1 <= page_size <= 50:
            return wire.error(400, f"size must be between 1 and 50, got {page_size}")
        session_id = query.get("sessionID") or None
        model = query.get("model") or None
        status = query.get("status") or None

        origin = _origin(request)
        now = time.monotonic()
        newest_first = sorted(self.state.predictions.values(), key=lambda p: p.sequence, reverse=True)
        matching = [
            p
            for p in newest_first
            if (session_id is None or p.id == session_id)
            and (model is None or p.model_id == model)
            and (status is None or p.status(now) == status)
        ]
        page = matching[(page_no - 1) * page_size : page_no * page_size]
        items = [
            {
                "ID": p.id,
                "createdAt": int(p.created_at),
                "model": p.model_id,
                "requestBody": json.dumps(p.request_body, ensure_ascii=False),
                "status": p.status(now),
                "result": p.payload(origin, now),
            }
            for p in page
        ]
        return wire.success({"items": items, "pageNo": page_no, "pageSize": page_size, "total": len(matching)})

    async def upload_media(self, request: Request) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        try:
            upload = await store_upload(
                request.headers.get("content-type"), request.stream(), self.state.storage_dir / "uploads"
            )
        except UploadError as exc:
            return wire.error(400, exc.message, key="msg")
        except ClientDisconnect:
            logger.debug("upload abandoned by the client")
            return Response(status_code=400)
        self.state.add_upload(upload)
        url = f"{_origin(request)}/emulator-storage/uploads/{upload.key}/{quote(upload.filename)}"
        data = {
            "download_url": url,
            "filename": upload.filename,
            "file_name": upload.filename,
            "content_type": upload.content_type,
            "type": upload.content_type,
            "size": upload.size,
        }
        return wire.success(data, key="msg", code="200")

    async def models(self, request: Request) -> Response:
        origin = _origin(request)
        return wire.success([catalogue_entry(model, origin) for model in MODELS], key="msg")

    # --- public storage -------------------------------------------------------------------

    async def schema(self, request: Request) -> Response:
        path: str = request.path_params["model_path"]
        model = find_model(path.removesuffix(".json")) if path.endswith(".json") else None
        if model is None:
            return wire.not_found(f"no schema document at this path: {request.url.path}")
        return JSONResponse(schema_document(model))

    async def output_file(self, request: Request) -> Response:
        prediction_id: str = request.path_params["prediction_id"]
        name: str = request.path_params["name"]
        match = _OUTPUT_NAME.fullmatch(name)
        prediction = self.state.get_prediction(prediction_id) if _HEX_ID.fullmatch(prediction_id) else None
        if (
            prediction is None
            or match is None
            or match[2] != prediction.submission.model.output_extension
            or not prediction.has_output(int(match[1]))
        ):
            return wire.not_found("file not found")
        path = self.state.storage_dir / "outputs" / prediction.id / name
        if not path.is_file():
            data = await to_thread.run_sync(_render_output, prediction, int(match[1]))
            await to_thread.run_sync(_write_atomically, path, data)
        return FileResponse(path, media_type=_MEDIA_TYPES[match[2]])

    async def uploaded_file(self, request: Request) -> Response:
        key: str = request.path_params["key"]
        name: str = request.path_params["name"]
        upload = self.state.get_upload(key)
        if upload is None and _HEX_ID.fullmatch(key) and safe_filename(name) == name:
            # Files kept in a reused storage folder from an earlier run stay downloadable.
            path = self.state.storage_dir / "uploads" / key / name
            if path.is_file():
                upload = Upload(key, name, "application/octet-stream", path.stat().st_size, path)
        if upload is None or upload.filename != name:
            return wire.not_found("file not found")
        return FileResponse(upload.path, media_type=upload.content_type)

    # --- test controls --------------------------------------------------------------------

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


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, in Atlas's JSON style rather than Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return wire.error(404, f"route not found: {request.method} {request.url.path}", key="error")
    text = f"method {request.method} not allowed on {request.url.path}" if exc.status_code == 405 else exc.detail
    return wire.error(exc.status_code, text, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return wire.error(500, f"internal emulator error: {type(exc).__name__}")


class EmulatorApp(Starlette):
    """Starlette with the recording/fault layer outside its own middleware stack."""

    def __init__(self, state: EmulatorState) -> None:
        self.emulator_state = state
        endpoints = _Endpoints(state)
        api = "/api/v1"
        routes = [
            Route(f"{api}/model/generateImage", endpoints.generate_image, methods=["POST"]),
            Route(f"{api}/model/generateVideo", endpoints.generate_video, methods=["POST"]),
            Route(f"{api}/model/generateAudio", endpoints.generate_audio, methods=["POST"]),
            Route(f"{api}/model/prediction/{{prediction_id:path}}", endpoints.get_prediction, methods=["GET"]),
            Route(f"{api}/model/history", endpoints.history, methods=["GET"]),
            Route(f"{api}/model/uploadMedia", endpoints.upload_media, methods=["POST"]),
            Route(f"{api}/models", endpoints.models, methods=["GET"]),
            Route("/emulator-storage/schemas/{model_path:path}", endpoints.schema, methods=["GET"]),
            Route("/emulator-storage/outputs/{prediction_id}/{name}", endpoints.output_file, methods=["GET"]),
            Route("/emulator-storage/uploads/{key}/{name}", endpoints.uploaded_file, methods=["GET"]),
            Route("/_emulator/requests", endpoints.list_requests, methods=["GET"]),
            Route("/_emulator/requests", endpoints.clear_requests, methods=["DELETE"]),
            Route("/_emulator/faults", endpoints.list_faults, methods=["GET"]),
            Route("/_emulator/faults", endpoints.add_faults, methods=["POST"]),
            Route("/_emulator/faults", endpoints.clear_faults, methods=["DELETE"]),
            Route("/_emulator/plans", endpoints.add_plans, methods=["POST"]),
            Route("/_emulator/plans", endpoints.clear_plans, methods=["DELETE"]),
            Route("/_emulator/reset", endpoints.reset, methods=["POST"]),
            Route("/_emulator/balance", endpoints.balance, methods=["GET", "PUT"]),
        ]
        super().__init__(
            routes=routes,
            exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        )

    def build_middleware_stack(self) -> ASGIApp:
        return RecordAndFaultMiddleware(super().build_middleware_stack(), self.emulator_state)


def build_app(state: EmulatorState) -> EmulatorApp:
    return EmulatorApp(state)
