"""A stand-in for the Atlas Cloud API that answers like the real one, for tests, demos and benchmarks.

Run it in-process (`with Emulator() as emulator: ... emulator.url`) or from the command line
(`atlascloud-mcp emulator --port 8787`) and point any Atlas client at its origin. It keeps
Atlas's paths, envelopes and quirks, paints images that show their prompt, and can be told
to misbehave (`Fault`) or to shape the next predictions (`PredictionPlan`).
"""

from atlas_mcp.emulator.faults import Fault, FaultKind
from atlas_mcp.emulator.predictions import PredictionPlan
from atlas_mcp.emulator.profiles import PROFILES, Profile
from atlas_mcp.emulator.runner import Emulator, run_emulator, standing_in
from atlas_mcp.emulator.state import EmulatorConfig, EmulatorState, RecordedRequest

__all__ = [
    "PROFILES",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "Fault",
    "FaultKind",
    "PredictionPlan",
    "Profile",
    "RecordedRequest",
    "run_emulator",
    "standing_in",
]
