"""The command line: ``atlascloud-mcp`` serves MCP over stdio; ``emulator``, ``demo`` and ``doctor`` are the other jobs.

stdout belongs to JSON-RPC when serving, so everything human goes to stderr through ``logging``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from atlas_mcp._version import __version__

if TYPE_CHECKING:
    import argparse


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:  # how MCP clients start us: serve at once (argparse is loaded for the other commands)
        return _serve()
    import argparse

    parser = argparse.ArgumentParser(
        prog="atlascloud-mcp",
        description="MCP server for Atlas Cloud image generation. With no command, serves MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"atlascloud-mcp {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve MCP over stdio (the default) or Streamable HTTP")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP: address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP: port (default 8000)")
    serve.add_argument(
        "--auth",
        choices=("header", "oauth"),
        default="header",
        help="HTTP: how callers authenticate. header (default): their Atlas key, or a team token, in Authorization; "
        "oauth: this server signs them in (OAuth 2.1) and keeps their Atlas keys encrypted (ATLASCLOUD_OAUTH_SECRET)",
    )
    serve.add_argument(
        "--upload-roots",
        nargs="*",
        default=[],
        metavar="DIR",
        help="stdio: folders upload_media may read from, instead of ATLASCLOUD_UPLOAD_ROOTS (a Claude Desktop "
        "bundle passes its folder picker's choices this way: one argument each)",
    )
    emulator = commands.add_parser("emulator", help="run the local Atlas API emulator (no key, no cost)")
    demo = commands.add_parser(
        "demo", help="generate an image through the server as a real MCP client would (emulator without a key)"
    )
    demo.add_argument("prompt", nargs="?", default="a lighthouse on a cliff at sunset, watercolor")
    demo.add_argument("--out", default="atlas-output", help="folder for the saved image (default: ./atlas-output)")
    demo.add_argument("--size", default="1024*1024", help="image size as W*H (default 1024*1024)")
    _add_doctor(commands)

    if arguments[:1] == ["emulator"]:
        # Loaded only for this command: serving stdio never imports the emulator.
        from atlas_mcp.emulator.cli import add_arguments

        add_arguments(emulator)
    args = parser.parse_args(arguments)

    if args.command == "emulator":
        _log_to_stderr("INFO")
        from atlas_mcp.emulator.cli import main_from_args

        main_from_args(args)
        return 0
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "demo":
        _log_to_stderr("WARNING")
        from atlas_mcp.demo import run_demo

        return run_demo(args.prompt, out=args.out, size=args.size)
    if args.command == "serve" and args.transport == "http":
        return _serve_http(args.host, args.port, args.auth)
    return _serve(getattr(args, "upload_roots", []))


def _add_doctor(commands: Any) -> None:  # argparse names its subparsers type only privately
    """The doctor's flags."""
    doctor = commands.add_parser(
        "doctor", help="check the settings, Atlas, the key, the default model, the quote and the folders"
    )
    doctor.add_argument("--emulator", action="store_true", help="run every check against the embedded emulator (free)")
    doctor.add_argument(
        "--generate", action="store_true", help="also make one real image end to end (FLUX.1 [schnell]: $0.003)"
    )
    doctor.add_argument(
        "--client-config",
        type=Path,
        metavar="FILE",
        help="take the environment from an MCP client's config file (e.g. claude_desktop_config.json)",
    )
    doctor.add_argument("--server", help="the server's name in that file (default: the one that runs atlascloud-mcp)")
    doctor.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write every Atlas request and answer to FILE (JSON lines), redacted before writing: attach it to a bug "
        "report",
    )
    doctor.add_argument("--keep-prompts", action="store_true", help="with --record: keep prompts (else their length)")
    doctor.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID",
        help="also look up this model (repeatable); with --generate, make one generation with each instead of the "
        "default model's, each price shown first",
    )


def _doctor(args: argparse.Namespace) -> int:
    from atlas_mcp.doctor import client_config_env, run_doctor
    from atlas_mcp.errors import ConfigError

    _log_to_stderr("ERROR")  # the doctor's own lines say what happened; library chatter would only distract
    environ = dict(os.environ)
    if args.client_config is not None:
        try:
            environ |= client_config_env(args.client_config, args.server)
        except ConfigError as exc:
            print(f"atlascloud-mcp doctor: {exc}", file=sys.stderr)
            return 2
    return run_doctor(
        environ,
        emulator=args.emulator,
        generate=args.generate,
        record=args.record,
        keep_prompts=args.keep_prompts,
        models=args.model,
    )


def _serve(upload_roots: Sequence[str] = ()) -> int:
    from atlas_mcp.config import Settings
    from atlas_mcp.errors import ConfigError

    environ = dict(os.environ)
    if any(root.strip() for root in upload_roots):  # a bundle's empty picker may still pass one empty argument
        environ["ATLASCLOUD_UPLOAD_ROOTS"] = os.pathsep.join(root for root in upload_roots if root.strip())
    try:
        settings = Settings.from_env(environ)
    except ConfigError as exc:
        print(f"atlascloud-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    _log_to_stderr(settings.log_level)
    log = logging.getLogger("atlas_mcp")
    if settings.api_key is None:
        log.warning(
            "ATLASCLOUD_API_KEY is not set: every tool except list_models, get_model_info and dry runs will "
            "fail until it is (add it to the env block of your MCP client's config)."
        )
    log.info("serving MCP over stdio against %s", settings.base_url)

    _stop_on_signals()
    import anyio

    from atlas_mcp.server import create_server
    from atlas_mcp.server.stdio import serve_stdio

    anyio.run(serve_stdio, create_server(settings))
    return 0


def _serve_http(host: str, port: int, auth: str = "header") -> int:
    from atlas_mcp.config import Settings
    from atlas_mcp.errors import ConfigError

    try:
        settings = Settings.from_env()
        _log_to_stderr(settings.log_level)
        from atlas_mcp.server.http import HttpOptions, serve_http

        serve_http(settings, HttpOptions(host=host, port=port, auth="oauth" if auth == "oauth" else "header"))
    except ConfigError as exc:
        print(f"atlascloud-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def _stop_on_signals() -> None:
    """SIGTERM and Ctrl-C end the server at once, with exit status 0 and no traceback.

    The stdio transport reads stdin in a worker thread that no cancellation can interrupt, so an orderly
    unwind (a KeyboardInterrupt, a cancelled task group) would wait for the client's next line: the
    server would hang until stdin closed. Nothing it holds needs more than the OS's own cleanup: saved
    outputs are written under a temporary name and renamed, and a request in flight is dropped as a lost
    connection would drop it.
    """

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("atlas_mcp").info("stopping on %s", signal.Signals(signum).name)
        logging.shutdown()
        os._exit(0)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def _log_to_stderr(level: str) -> None:
    from atlas_mcp.redaction import UrlQueryFilter

    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(UrlQueryFilter())  # signed output URLs carry their credential in the query
    if level != "DEBUG":  # httpx logs every request, five polls a second: our own lines say what matters
        logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
