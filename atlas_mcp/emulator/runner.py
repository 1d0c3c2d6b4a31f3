"""Serving the emulator: in a background thread for tests, or in the foreground for the CLI.

Both bind the listening socket themselves before uvicorn starts, so port 0 resolves to a
real port up front and a busy port fails in the caller, not inside a thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Generator
from pathlib import Path
from types import FrameType, TracebackType

import uvicorn

from atlas_mcp.emulator.app import EmulatorApp, build_app
from atlas_mcp.emulator.state import EmulatorConfig, EmulatorState

logger = logging.getLogger("atlas_mcp.emulator")

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
# In-flight requests (a delay fault, a sync-mode wait) get this long before they are cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 1


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol must say TCP explicitly: asyncio sets TCP_NODELAY on
    accepted connections only then, and without it keep-alive requests stall ~40 ms each."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _origin(sock: socket.socket, scheme: str) -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _uvicorn_config(app: EmulatorApp, tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        log_config=None,  # leave the host application's logging alone
        access_log=False,  # the emulator logs requests itself, without the Authorization header
        lifespan="off",
        proxy_headers=False,  # answer for the socket's peer; X-Forwarded-* is not trusted
        server_header=False,  # Atlas does not announce uvicorn
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


class Emulator:
    """The Atlas emulator served by uvicorn on a daemon thread (127.0.0.1 and a free port by default)."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: a certificate and its key (PEM) to serve ``https`` with, as Atlas does; None: plain ``http``."""
        self.config = config or EmulatorConfig()
        self._tls = tls
        storage = self.config.storage_dir
        if storage is None:
            storage = Path(tempfile.mkdtemp(prefix="atlas-emulator-"))
            # Removed on stop(); the finalizer covers an emulator that was never stopped.
            self._cleanup: weakref.finalize | None = weakref.finalize(  # type: ignore[type-arg]
                self, shutil.rmtree, storage, ignore_errors=True
            )
        else:
            storage.mkdir(parents=True, exist_ok=True)
            self._cleanup = None
        self.state = EmulatorState(self.config, storage)
        self.app: EmulatorApp = build_app(self.state)
        self._host = host
        self._port = port
        self._url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The origin clients should use, e.g. "http://127.0.0.1:54321" (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: call start() or use it as a context manager")
        return self._url

    def start(self) -> None:
        """Serve in a background thread; returns once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("an Emulator can be started only once; create a new one")
        sock = _bind(self._host, self._port)
        server = uvicorn.Server(_uvicorn_config(self.app, self._tls))
        self._server = server

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # SystemExit from a failed startup, too
                self._failure = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name="atlas-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Atlas emulator did not start") from self._failure
            time.sleep(0.005)
        self._url = _origin(sock, "https" if self._tls else "http")
        logger.debug("Atlas emulator listening on %s", self._url)

    def stop(self) -> None:
        """Stop serving (in-flight requests get about a second) and remove a temporary storage dir."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(STOP_TIMEOUT_SECONDS)
            if thread.is_alive():
                server.force_exit = True
                thread.join(STOP_TIMEOUT_SECONDS)
            if thread.is_alive():
                logger.warning("the Atlas emulator thread did not stop within %s s", 2 * STOP_TIMEOUT_SECONDS)
        self._url = None
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _ForegroundServer(uvicorn.Server):
    """uvicorn's server, but Ctrl-C and SIGTERM end it with a normal return (exit status 0).

    Stock uvicorn re-raises the caught signal after shutting down, so SIGTERM would kill
    the process with it instead of letting `run_emulator` return.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True  # a second Ctrl-C stops waiting for in-flight requests
        self.should_exit = True


@contextlib.contextmanager
def standing_in(api_key: str, *, prediction_seconds: float) -> Generator[tuple[Emulator, dict[str, str]], None, None]:
    """An emulator standing in for Atlas (the demo, ``doctor --emulator``), and the environment that points the
    server at it. The spend-safety state is a scratch one too: each emulator starts empty, so the user's real ledger
    would answer a repeated request with a prediction of an emulator that is gone, and the emulator's pretend
    spending has no place in it."""
    with (
        Emulator(EmulatorConfig(prediction_seconds=prediction_seconds)) as emulator,
        tempfile.TemporaryDirectory(prefix="atlascloud-mcp-emulated-") as scratch,
    ):
        yield (
            emulator,
            {
                "ATLASCLOUD_BASE_URL": emulator.url,
                "ATLASCLOUD_API_KEY": api_key,
                "ATLASCLOUD_STATE_URL": f"sqlite:///{Path(scratch, 'state.db').as_posix()}",
            },
        )


def run_emulator(host: str, port: int, config: EmulatorConfig) -> None:
    """Serve the emulator in the foreground until Ctrl-C or SIGTERM (for `atlascloud-mcp emulator`)."""
    with contextlib.ExitStack() as stack:
        if config.storage_dir is None:
            storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="atlas-emulator-")))
        else:
            storage = config.storage_dir
            storage.mkdir(parents=True, exist_ok=True)
        app = build_app(EmulatorState(config, storage))
        sock = stack.enter_context(_bind(host, port))
        keys = "any API key accepted" if config.api_key is None else "API key required"
        logger.info("Atlas emulator listening on %s (%s)", _origin(sock, "http"), keys)
        logger.info("Atlas emulator storage: %s", storage)
        _ForegroundServer(_uvicorn_config(app)).run(sockets=[sock])
        logger.info("Atlas emulator stopped")
