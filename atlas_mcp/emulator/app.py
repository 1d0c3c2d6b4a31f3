"""The HTTP face of the emulator: Atlas's routes, public storage, and test controls.

Routes map one-to-one onto Atlas endpoints (see shared/reference/atlas-api.md and tests/fixtures/atlas/);
the storage routes stand in for Atlas's object store, signed URLs included; `/_emulator/*` lets a test
process that does not hold the Python object arm faults and read the request log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

import anyio
from anyio import to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from atlas_mcp.emulator import wire
from atlas_mcp.emulator.account import BadQuery, key_label, parse_query, usage_page
from atlas_mcp.emulator.catalogue import ModelType, catalogue_listing, find_model, schema_document
from atlas_mcp.emulator.chat import chat_completion
from atlas_mcp.emulator.control import control_routes
from atlas_mcp.emulator.fixtures import load
from atlas_mcp.emulator.middleware import LoopbackOnly, RecordAndFaultMiddleware
from atlas_mcp.emulator.predictions import THUMBNAIL, Prediction
from atlas_mcp.emulator.profiles import with_warm_up
from atlas_mcp.emulator.rendering import render_output, render_thumbnail, write_atomically
from atlas_mcp.emulator.state import EmulatorState, Upload
from atlas_mcp.emulator.uploads import UploadError, safe_filename, store_upload
from atlas_mcp.emulator.validation import InvalidRequest, parse_submission

logger = logging.getLogger("atlas_mcp.emulator")

# enable_sync_mode holds the request open until the prediction ends, but never longer than this.
SYNC_WAIT_CAP_SECONDS = 120.0
MAX_SEED = 2_147_483_647
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_OUTPUT_NAME = re.compile(r"(\d{1,2})(?:\.([a-z0-9]+))?")
_MEDIA_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "glb": "model/gltf-binary",
    "obj": "model/obj",
    "usdz": "model/vnd.usdz+zip",
    "fbx": "application/octet-stream",
    "stl": "model/stl",
    "zip": "application/zip",
}
_SERVE_CHUNK = 64 * 1024
_URL_LIFETIME_SECONDS = 3600  # how long a signed output URL works
_STATES = {"running", "succeeded", "failed"}  # the history's newer `state` filter


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


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

    def _key_label(self, request: Request) -> str:
        return key_label(request.headers.get("authorization", "").partition(" ")[2].strip())

    async def _answer(self, prediction: Prediction, origin: str) -> JSONResponse:
        """A prediction as GET answers it: failed ones come with the plan's HTTP status (500 on Atlas)."""
        payload = await self._payload(prediction, origin)
        if payload["status"] == "failed":
            body = {"code": 500, "message": prediction.plan.fail, "data": payload}
            return JSONResponse(body, status_code=prediction.plan.failure_http_status)
        return wire.success(payload)

    async def _payload(self, prediction: Prediction, origin: str) -> dict[str, Any]:
        """The prediction object at this moment, its outputs and error in the forms of its profile."""
        now = time.monotonic()
        outputs = await self._outputs(prediction, origin, now)
        return prediction.payload(origin, now, outputs=outputs, error=self._error(prediction))

    async def _outputs(
        self, prediction: Prediction, origin: str, now: float, *, inline: bool = True
    ) -> list[str] | None:
        """A finished prediction's outputs in its profile's form: signed URLs, or the files themselves inline."""
        if prediction.running(now) or prediction.plan.fail is not None or prediction.submission.model.answers_text:
            return None  # nothing to show yet, or text (a transcript) that has no other form
        count = prediction.submission.num_outputs
        form = prediction.profile.outputs
        if prediction.submission.params.get("enable_base64_output") is True and form != "data-uri":
            form = "base64"
        if inline and form in ("base64", "data-uri"):
            files = [await self._output_bytes(prediction, index) for index in range(count)]
            encoded = [base64.b64encode(data).decode("ascii") for data in files]
            if form == "base64":
                return encoded
            media_type = _MEDIA_TYPES[prediction.output_extension]
            return [f"data:{media_type};base64,{text}" for text in encoded]
        if form == "signed-url":
            return [self._signed(origin, prediction.output_path(index)) for index in range(count)]
        return None  # the plain URLs

    def _error(self, prediction: Prediction) -> Any:
        """A failure's `error`: the plain text, or an object with a numeric code as some models give it."""
        if prediction.plan.fail is None or not prediction.profile.error_object:
            return None
        error: dict[str, Any] = load("answers/prediction.failed.error-object.json")["body"]["data"]["error"]
        error["message"] = prediction.plan.fail
        if prediction.plan.error_code is not None:
            error["code"] = prediction.plan.error_code
        return error

    def _signed(self, origin: str, path: str) -> str:
        """An object-store link as Atlas hands them out: expiring, signed in its query (OSS's parameter names)."""
        expires = int(time.time()) + _URL_LIFETIME_SECONDS
        signature = quote(self._signature(path, expires), safe="")
        return f"{origin}{path}?Expires={expires}&OSSAccessKeyId={_ACCESS_KEY_ID}&Signature={signature}"

    def _signature(self, path: str, expires: int) -> str:
        digest = hmac.new(self.state.signing_key, f"GET\n{expires}\n{path}".encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")

    async def _output_bytes(self, prediction: Prediction, index: int) -> bytes:
        """The file of one output, rendered on first use and kept in storage."""
        path = self.state.storage_dir / "outputs" / prediction.id / prediction.output_name(index)
        if not path.is_file():
            data = await to_thread.run_sync(render_output, prediction, index)
            await to_thread.run_sync(write_atomically, path, data)
            return data
        return await to_thread.run_sync(path.read_bytes)

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
        try:
            profile = with_warm_up(
                submission.model.answers_as(self.state.config.profile), self.state.config.warm_up_seconds
            )
        except ValueError as exc:
            return wire.error(500, f"emulator misconfigured: {exc}")
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
            seconds=self.state.config.seconds_for(submission.model.id) if plan.seconds is None else plan.seconds,
            created_at=time.time(),
            started=time.monotonic(),
            sequence=sequence,
            profile=profile,
            key_label=self._key_label(request),
        )
        self.state.add_prediction(prediction)
        if submission.ignored_keys:
            logger.debug("prediction %s ignores keys %s", prediction.id, ", ".join(submission.ignored_keys))
        if submission.params.get("enable_sync_mode") is True or profile.synchronous:
            await anyio.sleep(min(prediction.remaining(), SYNC_WAIT_CAP_SECONDS))
            return await self._answer(prediction, _origin(request))
        answer = wire.success(await self._payload(prediction, _origin(request)))
        if self.state.config.store_outputs_at_submit and not submission.model.answers_text:
            answer.background = BackgroundTask(self._store_outputs, prediction)
        return answer

    async def _store_outputs(self, prediction: Prediction) -> None:
        for index in range(prediction.submission.num_outputs):
            await self._output_bytes(prediction, index)

    async def calculate(self, request: Request) -> Response:
        """Atlas's quote: the generate body in, the price it would cost out (nothing is started or charged)."""
        if not self._authorized(request):
            return wire.unauthorized()
        try:
            submission = parse_submission(await request.json(), None)
        except ValueError as exc:
            return wire.error(400, f"request body must be JSON: {exc}")
        except InvalidRequest as exc:
            return wire.error(400, exc.message)
        model = submission.model
        count = submission.num_outputs  # what a run is charged: a song model's two takes are two outputs
        profile = model.answers_as(self.state.config.profile)
        quote_ = load("answers/calculate.json")["body"]
        quoted = self.state.config.quotes.get(model.id)
        quote_["data"] |= {
            "price": _dollars(model.price * count if quoted is None else quoted),
            "origin_price": _dollars(float(model.origin_price) * count),
            "estimated": profile.quote_estimated,
            "estimate_partial": profile.quote_estimated,
        }
        return JSONResponse(quote_)

    async def account_balance(self, request: Request) -> Response:
        """``/public/v1/balance``: the account's money, in the shape of ``answers/balance.json``."""
        if not self._authorized(request):
            return wire.unauthorized()
        if self.state.config.balance_answer is not None:
            return JSONResponse(self.state.config.balance_answer)
        answer = load("answers/balance.json")["body"]
        currency = answer["available"]["currency"]

        def money(value: float) -> dict[str, str]:
            return {"value": f"{value:.6f}", "currency": currency}  # six places, as the live service writes them

        answer |= {
            "account": {"id": "acct_emulator", "name": "Emulator account", "type": "personal"},
            "available": money(self.state.balance),
            "cash": money(self.state.balance),
            "bonus": money(0),
            "subscription_bonus": money(0),
            "frozen": money(0),
        }
        answer["credit_grant"] = {
            "status": "inactive",
            **{name: money(0) for name in ("granted", "used", "remaining_overdraft", "overdrawn")},
        }
        return JSONResponse(answer)

    async def model_usage(self, request: Request) -> Response:
        return await self._usage(request, "usage")

    async def model_costs(self, request: Request) -> Response:
        return await self._usage(request, "costs")

    async def _usage(self, request: Request, report: Literal["usage", "costs"]) -> Response:
        """``/public/v1/model-usage`` and ``/model-costs``, not enveloped, counted from this emulator's history."""
        if not self._authorized(request):
            return wire.unauthorized()
        query: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            query.setdefault(name, []).append(value)
        try:
            parsed = parse_query(query)
        except BadQuery as exc:
            return wire.error(400, exc.message)
        charges = self.state.charges()
        if parsed.scope == "self":
            mine = self._key_label(request)
            charges = [charge for charge in charges if charge.api_key == mine]
        return JSONResponse(usage_page(report, parsed, charges))

    async def chat_completions(self, request: Request) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        return await chat_completion(self.state, request, self._key_label(request))

    async def get_prediction(self, request: Request) -> Response:
        if not self._authorized(request):
            return wire.unauthorized()
        prediction_id: str = request.path_params["prediction_id"]
        if not _HEX_ID.fullmatch(prediction_id):
            return wire.error(400, f"invalid prediction id {prediction_id!r}: expected 32 lowercase hex characters")
        prediction = self.state.get_prediction(prediction_id)
        if prediction is None:
            return wire.not_found()
        if not prediction.visible():
            status = prediction.profile.not_visible_status
            answer = load(f"answers/prediction.not-visible-yet.{status}.json")
            return JSONResponse(answer["body"], status_code=answer["status"])
        response = await self._answer(prediction, _origin(request))
        pause = self.state.config.poll_retry_after
        if pause is not None and prediction.running():
            response.headers["Retry-After"] = f"{pause:g}"
        return response

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
        # Both query forms: the older (status, sessionID) and the newer (state, modelPrefix).
        session_id = query.get("sessionID") or None
        model = query.get("model") or None
        model_prefix = query.get("modelPrefix") or None
        status = query.get("status") or None
        state = query.get("state") or None
        if state is not None and state not in _STATES:
            return wire.error(400, f"state must be one of {', '.join(sorted(_STATES))}, got {state!r}")

        origin = _origin(request)
        now = time.monotonic()
        newest_first = sorted(self.state.predictions.values(), key=lambda p: p.sequence, reverse=True)
        matching = [
            p
            for p in newest_first
            if p.visible(now)
            and (session_id is None or p.id == session_id)
            and (model is None or p.model_id == model)
            and (model_prefix is None or p.model_id.startswith(model_prefix))
            and (status is None or p.status(now) == status)
            and (state is None or _state_of(p, now) == state)
        ]
        page = matching[(page_no - 1) * page_size : page_no * page_size]
        items = []
        for p in page:
            outputs = await self._outputs(p, origin, now, inline=False)
            items.append(
                {
                    "ID": p.id,
                    "createdAt": int(p.created_at),
                    "model": p.model_id,
                    "requestBody": json.dumps(p.request_body, ensure_ascii=False),
                    "status": p.status(now),
                    "result": p.payload(origin, now, outputs=outputs, error=self._error(p)),
                }
            )
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
        config = self.state.config
        listing = catalogue_listing(origin, config.catalogue_size, live_shapes=config.catalogue_live_shapes)
        return wire.success(listing, key="msg")

    # --- public storage -------------------------------------------------------------------

    async def schema(self, request: Request) -> Response:
        path: str = request.path_params["model_path"]
        model = find_model(path.removesuffix(".json")) if path.endswith(".json") else None
        if model is None:
            return wire.not_found(f"no schema document at this path: {request.url.path}")
        return JSONResponse(schema_document(model, _origin(request)))

    async def output_file(self, request: Request) -> Response:
        prediction_id: str = request.path_params["prediction_id"]
        name: str = request.path_params["name"]
        match = _OUTPUT_NAME.fullmatch(name)
        prediction = self.state.get_prediction(prediction_id) if _HEX_ID.fullmatch(prediction_id) else None
        stills = ("Video", "3d", "3d-zip")
        if (
            name == THUMBNAIL
            and prediction is not None
            and {prediction.submission.model.type, prediction.submission.model.answers} & set(stills)
        ):
            still = await to_thread.run_sync(render_thumbnail, prediction)
            return Response(still, media_type="image/jpeg")
        if (
            prediction is None
            or match is None
            or name != prediction.output_link_name(int(match[1]))
            or not prediction.has_output(int(match[1]))
        ):
            return wire.not_found("file not found")
        if prediction.profile.outputs == "signed-url" and (refusal := self._refuse_unsigned(request)) is not None:
            return refusal
        index = int(match[1])
        await self._output_bytes(prediction, index)
        stored = prediction.output_name(index)
        path = self.state.storage_dir / "outputs" / prediction.id / stored
        return StreamingResponse(
            self._served(request.url.path, path),
            media_type=_MEDIA_TYPES[prediction.output_extension],
            headers={
                "Content-Disposition": f'attachment; filename="{stored}"',
                "Content-Length": str(path.stat().st_size),
            },
        )

    async def _served(self, link: str, path: Path) -> AsyncIterator[bytes]:
        """A stored file, counted as it goes out: tests see how much of it a client really read."""
        with path.open("rb") as handle:
            while chunk := await to_thread.run_sync(handle.read, _SERVE_CHUNK):
                self.state.count_served(link, len(chunk))
                yield chunk

    def _refuse_unsigned(self, request: Request) -> Response | None:
        """An object store's answer to a link whose signature is missing, wrong or expired, or that comes with a
        Referer (some buckets refuse any), or None when the request may have the file."""
        if request.headers.get("referer"):
            return _storage_error("AccessDenied", "You are denied by bucket referer policy.")
        query = parse_qs(urlsplit(str(request.url)).query)
        expires, signature = query.get("Expires", [""])[0], query.get("Signature", [""])[0]
        if not expires.isdigit() or not signature:
            return _storage_error("AccessDenied", "You have no right to access this object because of bucket acl.")
        if not hmac.compare_digest(signature, self._signature(request.url.path, int(expires))):
            return _storage_error("SignatureDoesNotMatch", "The request signature we calculated does not match.")
        if int(expires) < time.time():
            return _storage_error("AccessDenied", "Request has expired.")
        return None

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


_ACCESS_KEY_ID = "LTAI5tEmulatorKeyId0000"


def _storage_error(code: str, message: str) -> Response:
    """An error as an object store writes it: XML, 403."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{message}</Message>\n"
        f"  <RequestId>{secrets.token_hex(12).upper()}</RequestId>\n</Error>\n"
    )
    return Response(body, status_code=403, media_type="application/xml")


def _state_of(prediction: Prediction, now: float) -> str:
    if prediction.running(now):
        return "running"
    return "failed" if prediction.plan.fail is not None else "succeeded"


def _dollars(amount: float, *, places: int = 6) -> str:
    """A price as Atlas writes it: a string, without trailing zeros."""
    text = f"{amount:.{places}f}"
    return text if places == 2 else (text.rstrip("0").rstrip(".") or "0")


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
            Route(f"{api}/model/calculate", endpoints.calculate, methods=["POST"]),
            Route(f"{api}/models", endpoints.models, methods=["GET"]),
            Route("/public/v1/balance", endpoints.account_balance, methods=["GET"]),
            Route("/public/v1/model-usage", endpoints.model_usage, methods=["GET"]),
            Route("/public/v1/model-costs", endpoints.model_costs, methods=["GET"]),
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            Route("/emulator-storage/schemas/{model_path:path}", endpoints.schema, methods=["GET"]),
            Route("/emulator-storage/outputs/{prediction_id}/{name}", endpoints.output_file, methods=["GET"]),
            Route("/emulator-storage/uploads/{key}/{name}", endpoints.uploaded_file, methods=["GET"]),
            *control_routes(state),
        ]
        super().__init__(
            routes=routes,
            exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        )

    def build_middleware_stack(self) -> ASGIApp:
        return LoopbackOnly(RecordAndFaultMiddleware(super().build_middleware_stack(), self.emulator_state))


def build_app(state: EmulatorState) -> EmulatorApp:
    return EmulatorApp(state)
