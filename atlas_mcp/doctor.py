"""``atlascloud-mcp doctor``: what a user runs right after adding the key to their MCP client.

It reads the settings the way the server does, from the same environment the client passes (or from the
client's own config file with ``--client-config``), then checks each link of the chain a generation needs, in
order: settings, Atlas answering, the key, the spend-safety store, the default model's schema, Atlas's quote,
the folders, and with
``--generate`` one real generation through the server itself. One line per step: ✔, ✘ (with the fix under
it) or – (skipped, and why). Exit status 0 only when every step it ran passed. ``--emulator`` runs it all
against the embedded Atlas emulator, for free. The key is never printed: at most its last 4 characters.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from atlas_mcp._version import __version__
from atlas_mcp.atlas import AtlasClient
from atlas_mcp.config import Settings
from atlas_mcp.errors import (
    AtlasMCPError,
    AuthenticationError,
    ConfigError,
    InputError,
    SchemaUnavailableError,
    StateUnavailableError,
)
from atlas_mcp.state import StateStore, open_store

if TYPE_CHECKING:
    from atlas_mcp.atlas.recording import Recorder
    from atlas_mcp.core.catalog import ModelCatalog
    from atlas_mcp.core.requests import ImageRequest, Prepared

__all__ = ["client_config_env", "run_doctor"]

DOCTOR_PROMPT = "a small red cube on a white table, studio photo"
_EMULATOR_KEY = "doctor-key-for-the-local-emulator"


@dataclass
class Report:
    """The lines the doctor prints, and whether any step failed."""

    out: TextIO
    failures: int = 0
    passes: int = 0
    skips: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.passes += 1
        self._line("✔", text)

    def fail(self, text: str, fix: str) -> None:
        self.failures += 1
        self._line("✘", text)
        self.out.write(f"    fix: {fix}\n")
        self.out.flush()

    def skip(self, text: str) -> None:
        self.skips.append(text)
        self._line("–", text)

    def note(self, text: str) -> None:
        self.out.write(f"  {text}\n")
        self.out.flush()

    def _line(self, mark: str, text: str) -> None:
        self.out.write(f"{mark} {text}\n")
        self.out.flush()


def run_doctor(
    environ: Mapping[str, str] | None = None,
    *,
    emulator: bool = False,
    generate: bool = False,
    out: TextIO | None = None,
    record: Path | None = None,
    keep_prompts: bool = False,
    models: Sequence[str] = (),
) -> int:
    """Run the checks and print them; return the exit status (0: every step that ran passed). ``record``: write
    every Atlas request and answer to that file, redacted (:mod:`atlas_mcp.atlas.recording`). ``models``: look each
    up (its catalogue entry and schema) and, with ``generate``, make one generation with each instead of the
    default model's."""
    report = Report(out or sys.stdout)
    env = dict(os.environ if environ is None else environ)
    with contextlib.ExitStack() as stack:
        if emulator:
            from atlas_mcp.emulator import standing_in

            _running, emulated = stack.enter_context(standing_in(_EMULATOR_KEY, prediction_seconds=1.0))
            env |= emulated
        where = "the embedded Atlas emulator (free)" if emulator else "your settings, as an MCP client would pass them"
        report.note(f"atlascloud-mcp {__version__} doctor: checking {where}.")
        try:
            settings = Settings.from_env(env)
        except ConfigError as exc:
            report.fail(
                f"Settings: {exc}",
                "correct that variable in the env block of your MCP client's config (or your shell) and run doctor "
                "again.",
            )
            report.skip("Everything else: it needs valid settings.")
            return _summary(report)
        report.ok(_settings_text(settings, emulator))
        recorder = _recorder(record, settings, keep_prompts) if record is not None else None
        anyio.run(_check_all, settings, report, generate, recorder, tuple(models))
        if recorder is not None and record is not None:
            prompts = "" if keep_prompts else ", and prompts only by their length"
            report.note(
                f"Recorded {recorder.summary()} to {record}: no key, signed-URL values, account names or file "
                f"bytes are in it{prompts}."
            )
        return _summary(report)


def _recorder(path: Path, settings: Settings, keep_prompts: bool) -> Recorder:
    from atlas_mcp.atlas.recording import Recorder

    path.write_text("", encoding="utf-8")  # a fresh recording each run
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return Recorder(path, [key] if key else [], keep_prompts=keep_prompts)


def _settings_text(settings: Settings, emulator: bool) -> str:
    origin = "the embedded emulator" if emulator else settings.base_url
    waits = (
        f"calls wait up to {settings.wait_seconds:g} s"
        if settings.wait_is_set
        else f"calls wait up to {settings.wait_seconds:g} s, longer for clients known to allow it (docs/clients.md)"
    )
    return f"Settings are valid: Atlas at {origin}, {waits}."


async def _check_all(
    settings: Settings,
    report: Report,
    generate: bool,
    recorder: Recorder | None = None,
    named: tuple[str, ...] = (),
) -> None:
    from atlas_mcp.core.catalog import ModelCatalog
    from atlas_mcp.media.previews import DecodeBudget
    from atlas_mcp.server.appstate import AppState
    from atlas_mcp.server.pipeline import prepare
    from atlas_mcp.spend.policy import SpendGuard

    transport = _recording(recorder)
    async with AtlasClient(
        api_key=settings.api_key, base_url=settings.base_url, timeout=settings.http_timeout, transport=transport
    ) as atlas:
        catalog = ModelCatalog(atlas)
        try:
            models = await catalog.models()
        except AtlasMCPError as exc:
            report.fail(
                f"Atlas did not answer: {exc}",
                "check this machine's network (a proxy or firewall?) and ATLASCLOUD_BASE_URL "
                f"(now {settings.base_url}).",
            )
            report.skip("The key, the model, the quote and the generation: they need Atlas to answer.")
            _check_folders(settings, report)
            return
        report.ok(f"Atlas answers: the catalogue lists {len(models)} models.")

        has_key = settings.api_key is not None
        key_works = False
        if not has_key:
            report.skip(
                "API key: ATLASCLOUD_API_KEY is not set, so the key, the quote and the generation were skipped. "
                "Add it to the env block of your MCP client's config."
            )
        else:
            key_works = await _check_key(atlas, settings, report)

        store = open_store(settings.state_url.get_secret_value() if settings.state_url is not None else None)
        try:
            await _check_state(settings, store, report)
        finally:
            await store.aclose()
        guard = SpendGuard(settings, store)
        state = AppState(settings=settings, atlas=atlas, catalog=catalog, previews=DecodeBudget(), spend=guard)
        prepared = None
        model = settings.default_model
        try:
            build = _default_request().to_params
            prepared = await prepare(state, kind="image", model=model, build=build, skip_validation=False)
            report.ok(f"Default model {model}: its schema reads, and a default request passes validation.")
        except (InputError, SchemaUnavailableError) as exc:
            report.fail(
                f"Default model {model}: {exc}",
                "set ATLASCLOUD_DEFAULT_MODEL to an image model from list_models (or unset it for "
                "black-forest-labs/flux-schnell).",
            )
        except AtlasMCPError as exc:
            report.fail(f"Default model {model}: {exc}", "try again in a minute; Atlas may be having trouble.")

        if prepared is not None and key_works:
            await _check_quote(atlas, prepared, report)
        elif has_key and prepared is not None:
            report.skip("Quote: skipped, the key was not accepted.")

        _check_folders(settings, report)
        if named:
            asked = [await _check_model(catalog, model, report) for model in named]
            await _check_generations(settings, report, asked if generate else None, key_works, recorder)
        elif not generate:
            price = prepared.catalogue_price() if prepared else None
            cost = f" (about ${price:.4g})" if price is not None else ""
            report.skip(f"Generation: add --generate to make one real image end to end{cost}.")
        elif not key_works or prepared is None:
            report.skip("Generation: skipped, it needs an accepted key and a default model that passes.")
        else:
            await _check_generation(settings, report, {"prompt": DOCTOR_PROMPT}, _recording(recorder))


async def _check_generations(
    settings: Settings,
    report: Report,
    calls: list[tuple[str, dict[str, Any]] | None] | None,
    key_works: bool,
    recorder: Recorder | None,
) -> None:
    """One generation with each model named (``calls``; ``None`` without --generate)."""
    if calls is None:
        report.skip("Generations: add --generate to make one with each model named, each price shown first.")
    elif not key_works:
        report.skip("Generations: skipped, they need an accepted key.")
    else:
        for call in calls:
            if call is not None:
                await _check_generation(settings, report, call[1], _recording(recorder), tool=call[0])


async def _check_model(catalog: ModelCatalog, model: str, report: Report) -> tuple[str, dict[str, Any]] | None:
    """A model named with --model: its entry and schema, and the call that would make one generation with it (None
    when doctor cannot make one up: a model that takes an image or a sound needs the user's own input)."""
    try:
        details = await catalog.details(model)
    except AtlasMCPError as exc:
        report.fail(f"Model {model}: {exc}", "check the id with list_models (ids are case-sensitive).")
        return None
    kind = (details.entry.type or "").lower()
    schema = details.schema
    report.ok(f"Model {model} ({details.entry.type or 'no type'}): its schema reads, {len(schema.offered)} parameters.")
    if kind in ("image", "video") and schema.takes("prompt"):
        return f"generate_{kind}", {"model": model, "prompt": DOCTOR_PROMPT}
    if kind == "audio" and schema.takes("text"):
        return "generate_audio", {"model": model, "text": DOCTOR_PROMPT}
    if kind == "audio" and schema.takes("prompt"):
        return "generate_audio", {"model": model, "params": {"prompt": DOCTOR_PROMPT}}
    report.skip(f"Model {model}: no generation, it takes an input doctor cannot make up; run it from your client.")
    return None


async def _check_quote(atlas: AtlasClient, prepared: Prepared, report: Report) -> None:
    try:
        quoted = await atlas.quote(prepared.model, prepared.params)
        estimate = ", an estimate" if quoted.estimated else ""
        report.ok(f"Atlas quotes that request: ${quoted.price:.4g}{estimate}.")
    except AtlasMCPError as exc:
        report.fail(
            f"Atlas did not quote that request: {exc}",
            "generations still work and show the catalogue price as an estimate; if this persists, "
            "Atlas's pricing service may be down.",
        )


async def _check_state(settings: Settings, store: StateStore, report: Report) -> None:
    """The spend-safety store: paid calls are refused while it cannot be used."""
    from atlas_mcp.spend.policy import SpendGuard

    try:
        await store.check()
        guard = SpendGuard(settings, store)
        spent = await guard.report(await guard.payer(_key_value(settings)))
    except StateUnavailableError as exc:
        report.fail(str(exc), "fix it before generating: paid calls fail closed while it is unusable.")
        return
    threshold = settings.confirm_above_usd
    asks = "never asks" if threshold is None else f"asks above ${threshold:.4g}" if threshold else "asks every time"
    report.ok(
        f"Spend safety: {store.name} works. {spent.text()} Confirmation {asks}; identical calls within "
        f"{settings.repeat_window_s:g} s are not paid twice."
    )


def _key_value(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


async def _check_key(atlas: AtlasClient, settings: Settings, report: Report) -> bool:
    shown = _key_hint(settings)
    try:
        balance = await atlas.balance()
    except AuthenticationError as exc:
        report.fail(
            f"API key {shown} was refused by Atlas (HTTP {exc.status}).",
            "copy the key again from the Atlas Cloud console (API keys) into ATLASCLOUD_API_KEY, without quotes "
            "or spaces, and restart your MCP client.",
        )
        return False
    except AtlasMCPError as exc:
        report.fail(f"API key {shown}: the balance could not be read: {exc}", "try again in a minute.")
        return False
    value, currency = balance.available.value, (balance.available.currency or "USD").upper()
    money = f"{value:.2f} {currency}" if value is not None else "an unreadable amount"
    low = " Top up before generating." if value is not None and value <= 0 else ""
    report.ok(f"API key {shown} is accepted: {money} available.{low}")
    return True


def _check_folders(settings: Settings, report: Report) -> None:
    folder = settings.output_dir
    if folder is None:
        report.ok("Output folder: not set, so results link their files without saving them (ATLASCLOUD_OUTPUT_DIR).")
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
                pass
            report.ok(f"Output folder {folder} is writable.")
        except OSError as exc:
            report.fail(
                f"Output folder {folder} is not writable ({exc.strerror or exc}).",
                "point ATLASCLOUD_OUTPUT_DIR at a folder you own, e.g. ~/Pictures/atlas.",
            )
    roots = settings.upload_roots
    missing = [root for root in roots if not root.is_dir()]
    if missing:
        report.fail(
            f"Upload folders missing: {', '.join(map(str, missing))}.",
            "create them, or fix ATLASCLOUD_UPLOAD_ROOTS.",
        )
    elif roots:
        report.ok(f"Upload folders exist: {', '.join(map(str, roots))}.")
    else:
        report.ok("Upload folders: not set, so upload_media reads only inside the client's workspace roots.")


def _default_request() -> ImageRequest:
    """generate_image's request with nothing but the prompt: what a first call looks like."""
    from atlas_mcp.core.requests import ImageRequest

    return ImageRequest(
        prompt=DOCTOR_PROMPT,
        width=None,
        height=None,
        size=None,
        num_images=1,
        seed=None,
        image=None,
        strength=None,
        steps=None,
        guidance_scale=None,
        params={},
    )


def _recording(recorder: Recorder | None) -> Any:
    if recorder is None:
        return None
    from atlas_mcp.atlas.recording import RecordingTransport

    return RecordingTransport(recorder)


async def _check_generation(
    settings: Settings,
    report: Report,
    arguments: dict[str, Any],
    transport: Any = None,
    *,
    tool: str = "generate_image",
) -> None:
    """One real generation through the server itself, as a client would make it: quote, submit, wait, save."""
    from mcp import Client
    from mcp_types import ImageContent, TextContent

    from atlas_mcp.server import create_server

    async with Client(create_server(settings, transport=transport)) as client:
        dry = await client.call_tool(tool, {**arguments, "dry_run": True})
        quote = (dry.structured_content or {}).get("quote") or {}
        price = f"${quote['price_usd']:.4g}" if "price_usd" in quote else "an unknown price"
        model = arguments.get("model", settings.default_model)
        report.note(f"Generating one {tool.removeprefix('generate_')} with {model}; this costs {price}...")
        result = await client.call_tool(tool, arguments)
    structured: dict[str, Any] = result.structured_content or {}
    if result.is_error or structured.get("phase") != "succeeded":
        text = " ".join(block.text for block in result.content if isinstance(block, TextContent))
        report.fail(
            f"Generation did not finish: {text.strip()[:400]}",
            "see the message above; if it says the prediction is still running, run doctor again later.",
        )
        return
    outputs = structured.get("outputs") or [{}]
    previews = sum(1 for block in result.content if isinstance(block, ImageContent))
    saved = outputs[0].get("saved_path")
    paid = structured.get("price_usd")
    facts = [f"prediction {structured.get('prediction_id')}"]
    facts.append(f"paid ${paid:.4g}" if isinstance(paid, (int, float)) else "price not reported")
    facts.append(f"saved to {saved}" if saved else "not saved (ATLASCLOUD_OUTPUT_DIR is not set)")
    facts.append(f"{previews} inline preview{'s' if previews != 1 else ''}")
    text_only = structured.get("transcript") is not None  # speech-to-text and lyrics: their text is the result
    picture = str(outputs[0].get("media_type") or "").startswith("image/")
    if settings.output_dir is not None and not saved and not text_only:
        report.fail(f"Generation finished, but the file was not saved: {outputs[0].get('note')}", "check the folder.")
    elif previews == 0 and picture:
        report.fail(f"Generation finished without a preview: {outputs[0].get('note')}", "see the note.")
    else:
        report.ok(f"Generated one {tool.removeprefix('generate_')} end to end: {', '.join(facts)}.")


def _key_hint(settings: Settings) -> str:
    """The key as it may be shown: its last 4 characters, and only when it is long enough to keep the rest secret."""
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if key == _EMULATOR_KEY:
        return "(the emulator's own)"
    return f"…{key[-4:]}" if len(key) >= 16 else "(hidden: too short to show any of it)"


def _summary(report: Report) -> int:
    ran = report.passes + report.failures
    if report.failures:
        report.note(f"{report.failures} of {ran} checks failed; fix them in order, the first one first.")
        return 1
    skipped = f", {len(report.skips)} skipped" if report.skips else ""
    report.note(f"All {ran} checks passed{skipped}.")
    return 0


def client_config_env(path: Path, server: str | None) -> dict[str, str]:
    """The ``env`` block an MCP client config gives this server (``mcpServers`` or VS Code's ``servers``).

    Without ``server``, the entry whose command or arguments mention atlascloud-mcp or atlas_mcp is taken.
    """
    try:
        document = json.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--client-config: cannot read {path} ({exc})") from None
    servers = document.get("mcpServers") or document.get("servers") if isinstance(document, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(f"--client-config: {path} has no mcpServers (or servers) block")
    if server is not None:
        entry = servers.get(server)
    else:
        entry = next(
            (
                candidate
                for candidate in servers.values()
                if isinstance(candidate, dict)
                and "atlas" in json.dumps(candidate.get("args", [])) + str(candidate.get("command"))
            ),
            None,
        )
    if not isinstance(entry, dict):
        names = ", ".join(map(str, servers))
        raise ConfigError(f"--client-config: no atlascloud server in {path} (it has: {names}); name it with --server")
    env = entry.get("env") or {}
    if not isinstance(env, dict):
        raise ConfigError(f"--client-config: the env of that server in {path} is not an object")
    return {str(key): str(value) for key, value in env.items()}
