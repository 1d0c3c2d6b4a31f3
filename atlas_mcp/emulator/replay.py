"""``atlascloud-mcp emulator --replay FILE``: a recording made by ``doctor --record`` served as a profile.

A recording holds what Atlas answered, redacted (:mod:`atlas_mcp.atlas.recording`). What it says about *how* Atlas
answers becomes a :class:`~atlas_mcp.emulator.profiles.Profile` that every served model then answers in:

- the status words of a prediction while it runs, in the order first seen;
- whether a submit already answered with the outputs (synchronous), and what the id was called;
- a read that answered 404 or 400 before the prediction showed (the warm-up window);
- a failure's ``error`` as an object with a code, or as a string;
- how outputs were given: plain links, signed object-store links (with or without a file extension), base64 or
  ``data:`` URIs;
- whether Atlas's quote said its price was an estimate.

The recorded balance answer is served as it was (its account names redacted). Models the emulator does not serve
are named in :attr:`Replay.unknown`: their shapes are kept, their schemas are not replayed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas_mcp.emulator.catalogue import find_model
from atlas_mcp.emulator.profiles import OutputForm, Profile
from atlas_mcp.emulator.state import EmulatorConfig

__all__ = ["Replay", "derive_profile", "read_replay", "replayed"]

_FINAL = frozenset({"completed", "succeeded", "success", "failed", "timeout", "canceled", "cancelled"})
_SIGNED = frozenset({"Expires", "OSSAccessKeyId", "Signature", "X-Tos-Signature", "X-Amz-Signature"})
_READ = "GET /api/v1/model/prediction/{id}"
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{2,5}$")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")  # an inline file, not a sentence


@dataclass(frozen=True)
class Replay:
    profile: Profile
    models: tuple[str, ...]  # the models the recording names that the emulator serves
    unknown: tuple[str, ...]  # the models it names that the emulator does not serve
    balance: dict[str, Any] | None  # the recorded balance answer's body
    exchanges: int

    def summary(self) -> str:
        shown = ", ".join(self.models) or "none"
        missing = f"; not served here: {', '.join(self.unknown)}" if self.unknown else ""
        return f"{self.exchanges} exchanges; answering as recorded ({_describe(self.profile)}) for {shown}{missing}"


def read_replay(path: Path) -> Replay:
    """Read a recording (JSON lines); raise ``ValueError`` naming the line when one is not an exchange."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(entry, dict) or "endpoint" not in entry or "response" not in entry:
            raise ValueError(f"{path}:{number}: not an exchange recorded by doctor --record")
        entries.append(entry)
    named = sorted({entry["model"] for entry in entries if isinstance(entry.get("model"), str)})
    balance = next((_body(e) for e in entries if e["endpoint"] == "GET /public/v1/balance" and _ok(e)), None)
    return Replay(
        profile=derive_profile(entries),
        models=tuple(model for model in named if find_model(model) is not None),
        unknown=tuple(model for model in named if find_model(model) is None),
        balance=balance if isinstance(balance, dict) else None,
        exchanges=len(entries),
    )


def replayed(config: EmulatorConfig, replay: Replay) -> EmulatorConfig:
    """``config`` answering as the recording shows: its profile for every model, its balance answer."""
    return dataclasses.replace(config, profile=replay.profile, balance_answer=replay.balance)


def derive_profile(entries: list[dict[str, Any]]) -> Profile:
    submits = [e for e in entries if _submitted(e)]
    reads = [e for e in entries if e["endpoint"] == _READ]
    seen = [e for e in entries if _submitted(e) or e["endpoint"] == _READ]  # in the order they were recorded
    predictions = [_data(e) for e in seen if isinstance(_data(e), dict)]
    words: list[str] = []
    for prediction in predictions:
        status = str(prediction.get("status") or "")
        if status and status.lower() not in _FINAL and status not in words:
            words.append(status)
    warm_up = next((e["response"]["status"] for e in reads if e["response"]["status"] in (400, 404)), None)
    failures = [p for p in predictions if str(p.get("status", "")).lower() == "failed"]
    outputs = [o for p in predictions for o in (p.get("outputs") or p.get("output") or []) if isinstance(o, str)]
    links = [output for output in outputs if output.startswith(("http://", "https://"))]
    quotes = [_data(e) for e in entries if e["endpoint"] == "POST /api/v1/model/calculate" and _ok(e)]
    return Profile(
        name="replay",
        running_words=tuple(words) or ("created", "processing"),
        synchronous=bool(submits) and all(_done(_data(e)) for e in submits),
        not_visible_seconds=0.6 if warm_up is not None else 0.0,
        not_visible_status=404 if warm_up != 400 else 400,
        error_object=any(isinstance(p.get("error"), dict) for p in failures),
        outputs=_output_form(outputs),
        quote_estimated=any(isinstance(q, dict) and q.get("estimated") is True for q in quotes),
        extensionless=bool(links) and all(_extensionless(url) for url in links),
        id_name=_id_name([_data(e) for e in submits]),
    )


def _output_form(outputs: list[str]) -> OutputForm:
    """How files were given. A transcript's text in ``outputs[0]`` is neither: only links and inline files count."""
    if any(output.startswith("data:") for output in outputs):
        return "data-uri"
    if any(_BASE64.fullmatch(output) for output in outputs):
        return "base64"
    query = {part.split("=", 1)[0] for url in outputs for part in url.partition("?")[2].split("&") if part}
    return "signed-url" if query & _SIGNED else "url"


def _extensionless(url: str) -> bool:
    path = url.partition("?")[0].rstrip("/")
    return _EXTENSION.search(path.rsplit("/", 1)[-1]) is None


def _id_name(submitted: list[Any]) -> Any:
    for data in submitted:
        if isinstance(data, dict) and "id" not in data:
            for name in ("request_id", "prediction_id"):
                if name in data:
                    return name
    return "id"


def _describe(profile: Profile) -> str:
    facts = [f"status words {', '.join(profile.running_words)}", f"outputs as {profile.outputs}"]
    facts += ["synchronous"] if profile.synchronous else []
    facts += [f"warm-up {profile.not_visible_status}"] if profile.not_visible_seconds else []
    facts += ["extensionless links"] if profile.extensionless else []
    facts += [f"id named {profile.id_name}"] if profile.id_name != "id" else []
    facts += ["errors as objects"] if profile.error_object else []
    facts += ["estimated quotes"] if profile.quote_estimated else []
    return "; ".join(facts)


def _submitted(entry: dict[str, Any]) -> bool:
    return bool(entry["endpoint"].startswith("POST /api/v1/model/generate") and _ok(entry))


def _ok(entry: dict[str, Any]) -> bool:
    return 200 <= int(entry["response"].get("status", 0)) < 300


def _body(entry: dict[str, Any]) -> Any:
    return entry["response"].get("body")


def _data(entry: dict[str, Any]) -> Any:
    body = _body(entry)
    return body.get("data", body) if isinstance(body, dict) else body


def _done(data: Any) -> bool:
    return isinstance(data, dict) and str(data.get("status", "")).lower() in _FINAL and bool(data.get("outputs"))
