"""Command-line wiring for `atlascloud-mcp emulator`: flags in, a foreground server out."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from atlas_mcp.emulator.profiles import PROFILES
from atlas_mcp.emulator.replay import read_replay, replayed
from atlas_mcp.emulator.runner import run_emulator
from atlas_mcp.emulator.state import EmulatorConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorConfig()
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on, 0 for any (default: %(default)s)")
    parser.add_argument(
        "--prediction-seconds",
        type=float,
        default=defaults.prediction_seconds,
        help="how long each prediction takes (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this API key (default: any non-empty Bearer token)",
    )
    parser.add_argument(
        "--balance",
        type=float,
        default=defaults.balance,
        help="account balance in dollars; submits it cannot cover get HTTP 402 (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        choices=sorted(PROFILES),
        help="answer every model in this shape of the live service (default: each model its own)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="FILE",
        help="answer as the recording FILE (from doctor --record) shows Atlas answering: its status words, ids, "
        "output forms, quotes and balance",
    )
    parser.add_argument(
        "--storage",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep uploads and outputs in DIR (default: a temporary directory removed on exit)",
    )


def main_from_args(args: argparse.Namespace) -> None:
    """Run the emulator in the foreground with the parsed flags; logs go to stderr."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if args.prediction_seconds < 0:
        raise SystemExit("--prediction-seconds must not be negative")
    config = EmulatorConfig(
        prediction_seconds=args.prediction_seconds,
        api_key=args.api_key or None,
        balance=args.balance,
        storage_dir=args.storage,
        profile=args.profile,
    )
    if args.replay is not None:
        try:
            replay = read_replay(args.replay)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--replay: {exc}") from None
        config = replayed(config, replay)
        logging.getLogger(__name__).info("replaying %s: %s", args.replay, replay.summary())
    run_emulator(args.host, args.port, config)
