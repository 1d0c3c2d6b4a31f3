"""A prediction's life, derived from the clock rather than driven by background tasks.

A prediction stores when it started and how long it takes; its status at any moment
is computed from that. Nothing has to run for predictions to progress, so submitting
hundreds costs nothing and a stopped emulator leaves no stray tasks behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import ConfigDict

from atlas_mcp.emulator.families import lyrics_text, speech_text
from atlas_mcp.emulator.fixtures import load
from atlas_mcp.emulator.profiles import Profile
from atlas_mcp.emulator.validation import Submission

FINAL_STATUSES = ("completed", "succeeded", "success")
OUTPUTS_KEYS = ("outputs", "output")
THUMBNAIL = "thumb.jpg"  # a video's still, served next to its outputs

# Share of the run spent in the first running word ("created", "queued") before the others, like a queue wait.
_FIRST_SHARE = 0.1


@dataclass
class PredictionPlan:
    """How the next submitted prediction behaves; queue several with `EmulatorState.plan_next`."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    seconds: float | None = None  # None: EmulatorConfig.prediction_seconds
    fail: str | None = None  # the prediction ends "failed" with this error text
    failure_http_status: int = 500  # how a failed prediction's GET is answered (Atlas says 500)
    final_status: str = "completed"  # the success word: "completed", "succeeded" or "success"
    outputs_key: str = "outputs"  # "outputs", or "output" as a few Atlas models say
    # Answer these as the outputs instead of the emulator's own files: for clients' download policies
    # (a plain-http URL, a private address, a host of another origin...).
    output_urls: list[str] | None = None
    error_code: int | None = None  # for profiles that give error objects; None: the fixture's code
    # A model's file padded to this many bytes (3D models of tens of megabytes), for clients' download policies.
    pad_to_bytes: int | None = None
    # What a speech-to-text or lyric model answers in outputs[0] instead of its own text (one that looks like a URL).
    text_output: str | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}")
        if not 200 <= self.failure_http_status <= 599:
            raise ValueError(f"failure_http_status must be an HTTP status, got {self.failure_http_status}")
        if self.final_status not in FINAL_STATUSES:
            raise ValueError(f"final_status must be one of {FINAL_STATUSES}, got {self.final_status!r}")
        if self.outputs_key not in OUTPUTS_KEYS:
            raise ValueError(f"outputs_key must be one of {OUTPUTS_KEYS}, got {self.outputs_key!r}")


def iso_time(epoch: float) -> str:
    """UTC time as Atlas writes it: ISO 8601 with a Z."""
    stamp = datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def prediction_path(prediction_id: str) -> str:
    return f"/api/v1/model/prediction/{prediction_id}"


@dataclass(frozen=True)
class Prediction:
    id: str
    submission: Submission
    request_body: dict[str, Any]  # as submitted, for the history's `requestBody`
    seed: int  # resolved: never -1
    plan: PredictionPlan
    seconds: float
    created_at: float  # wall clock, for timestamps
    started: float  # time.monotonic(), for progress
    sequence: int  # submission order, for newest-first history
    profile: Profile  # how this prediction is answered, fixed at submit
    key_label: str = ""  # which API key submitted it, as the usage reports name keys (never the key)

    @property
    def model_id(self) -> str:
        return self.submission.model.id

    @property
    def price(self) -> float:
        """Dollars charged: nothing for a planned failure, else the model price per output."""
        if self.plan.fail is not None:
            return 0.0
        return round(self.submission.model.price * self.submission.num_outputs, 6)

    def status(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.started
        if elapsed >= self.seconds:
            return "failed" if self.plan.fail is not None else self.plan.final_status
        words = self.profile.running_words
        if elapsed < self.seconds * _FIRST_SHARE or len(words) == 1:
            return words[0]
        later = (elapsed - self.seconds * _FIRST_SHARE) / (self.seconds * (1 - _FIRST_SHARE))
        return words[1 + min(len(words) - 2, int(later * (len(words) - 1)))]

    def running(self, now: float | None = None) -> bool:
        return self.status(now) in self.profile.running_words

    def visible(self, now: float | None = None) -> bool:
        """Whether a read finds it yet: some models answer 404/400 for a while after the submit."""
        return (time.monotonic() if now is None else now) - self.started >= self.profile.not_visible_seconds

    def remaining(self, now: float | None = None) -> float:
        return max(self.seconds - ((time.monotonic() if now is None else now) - self.started), 0.0)

    def has_output(self, index: int, now: float | None = None) -> bool:
        """Whether output ``index`` is a file in storage by now (a transcript is text: no files)."""
        finished = not self.running(now) and self.plan.fail is None
        return finished and not self.submission.model.answers_text and 0 <= index < self.submission.num_outputs

    @property
    def output_extension(self) -> str:
        return self.submission.model.extension_for(self.submission.params)

    def output_name(self, index: int) -> str:
        """The stored file's name; the link leaves the extension out for profiles whose links carry none."""
        return f"{index}.{self.output_extension}"

    def output_link_name(self, index: int) -> str:
        return str(index) if self.profile.extensionless else self.output_name(index)

    def output_path(self, index: int) -> str:
        return f"/emulator-storage/outputs/{self.id}/{self.output_link_name(index)}"

    def text(self) -> str:
        """What a speech-to-text model heard (about 5,000 characters) or a lyric model wrote."""
        if self.submission.model.answers == "lyrics":
            return lyrics_text(str(self.submission.params.get("prompt", "")))
        return speech_text(seed=self.seed)

    def payload(
        self,
        origin: str,
        now: float | None = None,
        *,
        outputs: list[str] | None = None,
        error: Any = None,
    ) -> dict[str, Any]:
        """The prediction object as Atlas answers it at this moment.

        ``outputs`` are what a finished prediction lists (signed URLs, inline data; the plain URLs by
        default); ``error`` is how a failure's reason is written (the plain text by default).
        """
        status = self.status(now)
        data: dict[str, Any] = {
            self.profile.id_name: self.id,
            "model": self.model_id,
            "status": status,
            self.plan.outputs_key: [],
            "urls": {"get": origin + prediction_path(self.id)},
            "has_nsfw_contents": [],
            "created_at": iso_time(self.created_at),
            "error": "",
        }
        if status in self.profile.running_words:
            return data
        data["completed_at"] = iso_time(self.created_at + self.seconds)
        if self.plan.fail is not None:  # as answers/prediction.failed.*.json: no metrics, no price (not billed)
            data["error"] = self.plan.fail if error is None else error
            if isinstance(error, dict) and "code" in error:
                data["error_code"] = error["code"]
            return data
        data["metrics"] = {"predict_time": round(self.seconds, 3)}
        data["price"] = self.price
        count = self.submission.num_outputs
        if self.submission.model.transcribes:  # the fixed transcript, in the recorded shape
            recorded = load("answers/prediction.completed.transcript.json")["body"]["data"]
            outputs, data["stt_result"] = recorded["outputs"], recorded["stt_result"]
        elif self.submission.model.answers_text:  # the text itself is the output (the audio docs' warning)
            outputs = [self.plan.text_output if self.plan.text_output is not None else self.text()]
        elif self.plan.output_urls is not None:
            outputs = self.plan.output_urls
        elif outputs is None:
            outputs = [origin + self.output_path(i) for i in range(count)]
        data[self.plan.outputs_key] = outputs
        data["has_nsfw_contents"] = [False] * len(data[self.plan.outputs_key])
        if self.submission.model.type == "Video" or self.submission.model.answers in ("3d", "3d-zip"):
            # as answers/prediction.completed.other-fields.json; 3D models give a still of the model too
            data["thumbnail"] = f"{origin}/emulator-storage/outputs/{self.id}/{THUMBNAIL}"
        return data
