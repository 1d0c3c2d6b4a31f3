"""Everything the emulator remembers, shared by the server thread and the test thread.

Handlers run on the server's event loop while tests read and arm the state from their
own thread, so every access goes through one lock, held only for short, await-free
sections. Reads hand out copies, never the live containers.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas_mcp.emulator.account import Charge
from atlas_mcp.emulator.faults import Fault
from atlas_mcp.emulator.predictions import Prediction, PredictionPlan
from atlas_mcp.emulator.profiles import Profile

REDACTED = "<redacted>"


@dataclass
class EmulatorConfig:
    """How the emulated account and service behave; read on every request, so tests may adjust it."""

    prediction_seconds: float = 1.5  # time from submit to a final status
    api_key: str | None = None  # None: any non-empty Bearer token is accepted; else only this one
    balance: float = 1000.0  # dollars; a submit costing more than what is left gets 402
    storage_dir: Path | None = None  # uploads and outputs; None: a temporary directory
    # Answer every model in this profile (a name from profiles.py, or a Profile such as a replayed recording's);
    # None: each its own.
    profile: str | Profile | None = None
    # Answer GET /public/v1/balance with this body (a replayed recording's) instead of the emulator's own.
    balance_answer: dict[str, Any] | None = None
    chat_token_seconds: float = 0.0  # pause between the pieces of a streamed chat answer
    # A warm-up profile's window (reads answer 404/400 for this long after a submit) instead of its own 0.6 s:
    # a test that polls every few milliseconds sees the window just as well in a fraction of the time. None: the
    # profile's; profiles without a warm-up keep none.
    warm_up_seconds: float | None = None
    # Model id -> what /api/v1/model/calculate quotes for a request to it, whatever its list price: Atlas prices
    # some models by duration, size or quality, so its quote can be far from the catalogue's base price.
    quotes: dict[str, float] = field(default_factory=dict)
    # Pad GET /api/v1/models to this many entries (the live catalogue holds about 400): listed, real-shaped, spread
    # over the families as live; each copies a served model's schema link. 0: the served models only.
    catalogue_size: int = 0
    # Also list the recorded live catalogue shapes (a schema-less LLM, prices only per image or per request); they
    # are listed, not run, so they are off unless a test asks: a keyword search must not pick one to run.
    catalogue_live_shapes: bool = False
    # While a prediction runs, its reads carry ``Retry-After: N``. Not seen from Atlas (its docs name no such header);
    # our client honours one if it ever comes, and this shows it does. None: no header, as live.
    poll_retry_after: float | None = None
    # Paint every output when its prediction is submitted, not on its first download: Atlas's files are stored by the
    # time a prediction completes, so a download is only bytes (the time-to-image benchmark needs that).
    store_outputs_at_submit: bool = False
    # Model id -> how long its predictions take, instead of prediction_seconds (a model's length is its own).
    model_seconds: dict[str, float] = field(default_factory=dict)

    def seconds_for(self, model: str) -> float:
        return self.model_seconds.get(model, self.prediction_seconds)


@dataclass(frozen=True, repr=False)
class RecordedRequest:
    """One request as the emulator received it. `headers` keep the real Authorization for
    assertions; `repr` and `redacted_headers` hide it so logs and failure output do not."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body_size: int
    at: float  # time.monotonic() on arrival
    peer: str = ""  # the client's address and port: one per connection, so it tells a reused one from a new one

    def redacted_headers(self) -> dict[str, str]:
        return {k: REDACTED if k == "authorization" else v for k, v in self.headers.items()}

    def __repr__(self) -> str:
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, query={self.query!r}, "
            f"headers={self.redacted_headers()!r}, body_size={self.body_size}, at={self.at})"
        )


@dataclass(frozen=True)
class Upload:
    key: str  # 32 hex, the folder in the download URL
    filename: str
    content_type: str
    size: int
    path: Path


@dataclass
class _ArmedFault:
    fault: Fault
    remaining: int | None


@dataclass
class _Store:
    requests: list[RecordedRequest] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)  # output link path -> bytes sent so far
    faults: list[_ArmedFault] = field(default_factory=list)
    plans: list[PredictionPlan] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    chats: list[Charge] = field(default_factory=list)  # billed chat answers (predictions are counted from themselves)


class EmulatorState:
    """The emulator's memory: recorded requests, armed faults, queued plans, predictions, uploads."""

    def __init__(self, config: EmulatorConfig, storage_dir: Path) -> None:
        self.config = config
        self.storage_dir = storage_dir
        self._lock = threading.Lock()
        self._store = _Store()
        self._balance = config.balance
        self._sequence = 0
        self.signing_key = secrets.token_bytes(32)  # signs the output URLs of "signed-url" profiles

    # --- for tests and the control endpoints -------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (control endpoints excepted), oldest first."""
        with self._lock:
            return list(self._store.requests)

    def count_served(self, path: str, size: int) -> None:
        with self._lock:
            self._store.served[path] = self._store.served.get(path, 0) + size

    def served_bytes(self, path: str) -> int:
        """How many bytes of the output at ``path`` went out, over every request for it."""
        with self._lock:
            return self._store.served.get(path, 0)

    def clear_requests(self) -> None:
        with self._lock:
            self._store.requests.clear()

    def add_fault(self, fault: Fault) -> None:
        """Arm `fault`; faults are tried in the order they were added."""
        with self._lock:
            self._store.faults.append(_ArmedFault(dataclasses.replace(fault), fault.times))

    def clear_faults(self) -> None:
        with self._lock:
            self._store.faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """Armed faults, with `times` showing how many uses each has left."""
        with self._lock:
            return [dataclasses.replace(a.fault, times=a.remaining) for a in self._store.faults]

    def plan_next(self, plan: PredictionPlan) -> None:
        """Queue `plan` for the next submitted prediction (first in, first out)."""
        with self._lock:
            self._store.plans.append(dataclasses.replace(plan))

    def clear_plans(self) -> None:
        with self._lock:
            self._store.plans.clear()

    def reset(self) -> None:
        """Forget requests, faults and plans, and refill the balance. Predictions and uploads stay,
        so URLs handed out earlier keep working."""
        with self._lock:
            self._store.requests.clear()
            self._store.served.clear()
            self._store.faults.clear()
            self._store.plans.clear()
            self._balance = self.config.balance

    @property
    def predictions(self) -> dict[str, Prediction]:
        with self._lock:
            return dict(self._store.predictions)

    @property
    def prediction_count(self) -> int:
        with self._lock:
            return len(self._store.predictions)

    @property
    def balance(self) -> float:
        with self._lock:
            return self._balance

    @balance.setter
    def balance(self, dollars: float) -> None:
        with self._lock:
            self._balance = dollars

    # --- for the app ----------------------------------------------------------------------

    def record_request(self, request: RecordedRequest) -> int:
        """Append a request; the returned position lets `update_body_size` fill in the final size."""
        with self._lock:
            self._store.requests.append(request)
            return len(self._store.requests) - 1

    def update_body_size(self, position: int, request: RecordedRequest, body_size: int) -> None:
        with self._lock:
            requests = self._store.requests
            # The list may have been cleared meanwhile; only touch our own entry.
            if position < len(requests) and requests[position] is request:
                requests[position] = dataclasses.replace(request, body_size=body_size)

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, using up one of its times."""
        with self._lock:
            for armed in self._store.faults:
                if armed.fault.matches(method, path):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._store.faults.remove(armed)
                    return armed.fault
            return None

    def admit(self, cost: float) -> tuple[PredictionPlan, int] | None:
        """Start a submission: None if the balance cannot cover `cost` (nothing consumed); else the
        next plan and the submission's sequence number. Planned failures are not charged."""
        with self._lock:
            if cost > self._balance + 1e-9:
                return None
            plan = self._store.plans.pop(0) if self._store.plans else PredictionPlan()
            if plan.fail is None:
                self._balance -= cost
            self._sequence += 1
            return plan, self._sequence

    def bill(self, charge: Charge) -> bool:
        """Take a chat answer's cost from the balance and count it; False (nothing taken) when the balance is out."""
        with self._lock:
            if self._balance <= 0 or charge.cost > self._balance + 1e-9:
                return False
            self._balance -= charge.cost
            self._store.chats.append(charge)
            return True

    def charges(self) -> list[Charge]:
        """Every billed call so far, for the usage and cost reports: predictions not planned to fail, and chats."""
        with self._lock:
            predictions = list(self._store.predictions.values())
            chats = list(self._store.chats)
        billed = [
            Charge(
                at=p.created_at,
                model=p.model_id,
                model_type=p.submission.model.type.lower(),
                api_key=p.key_label,
                cost=p.price,
                images=p.submission.num_outputs if p.submission.model.type == "Image" else 0,
                videos=p.submission.num_outputs if p.submission.model.type == "Video" else 0,
                audios=p.submission.num_outputs if p.submission.model.type == "Audio" else 0,
            )
            for p in predictions
            if p.plan.fail is None
        ]
        return billed + chats

    def add_prediction(self, prediction: Prediction) -> None:
        with self._lock:
            self._store.predictions[prediction.id] = prediction

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        with self._lock:
            return self._store.predictions.get(prediction_id)

    def add_upload(self, upload: Upload) -> None:
        with self._lock:
            self._store.uploads[upload.key] = upload

    def get_upload(self, key: str) -> Upload | None:
        with self._lock:
            return self._store.uploads.get(key)
