"""The embedded default: one SQLite file in the user's data directory, shared by every server process on the machine.

Claude Desktop and Cursor may each run a server at the same time, against the same file. WAL lets readers and
one writer go on together; every write is one short ``BEGIN IMMEDIATE`` transaction, so two processes queue for
a few milliseconds instead of interleaving; ``busy_timeout`` bounds that queue. sqlite3 blocks, so each
operation runs in a worker thread, one at a time per process.

A file that cannot be opened (read-only disk, a folder we may not create) makes every operation raise
:class:`StateUnavailableError`: paid calls fail closed, free tools never come here. A file that is not a database
any more is moved aside, with a warning, and a new one is made: the ledger starts again from empty, which the
warning says.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread

from atlas_mcp.errors import StateUnavailableError
from atlas_mcp.state.base import Spending, StateStore

if TYPE_CHECKING:
    import sqlite3  # imported by the first operation: a server starts (and answers) without touching its ledger

__all__ = ["SqliteStore"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 5000  # how long one operation queues behind another process's transaction before failing closed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    payer TEXT NOT NULL, entry TEXT NOT NULL, at REAL NOT NULL, micro INTEGER NOT NULL, PRIMARY KEY (payer, entry)
);
CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger (payer, at);
CREATE INDEX IF NOT EXISTS ledger_by_age ON ledger (at);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, expires REAL NOT NULL);
"""


class SqliteStore(StateStore):
    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.path = path
        self.busy_timeout = busy_timeout  # seconds one operation queues behind another process before failing
        self.name = f"SQLite at {path}"
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # --- opening, and what to do when it cannot be opened --------------------------------------------

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # the ledger is nobody else's business
            return self._connect()
        except sqlite3.OperationalError as exc:  # read-only, locked, no space: not the file's fault
            raise self._unavailable(exc) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", or a failed integrity check
            self._move_aside(exc)
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
            return self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from None

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # our lock serialises
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            (verdict,) = connection.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {verdict}")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _move_aside(self, exc: sqlite3.DatabaseError) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        logger.warning(
            "the spend-safety state file %s is damaged (%s): moved it to %s and starting a new one; the budget's "
            "running total starts again from zero",
            self.path,
            exc,
            aside.name,
        )
        try:
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as moved:
            raise self._unavailable(moved) from None

    def _unavailable(self, exc: BaseException) -> StateUnavailableError:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return StateUnavailableError(
            f"The spend-safety state ({self.name}) cannot be used: {reason}. Paid generations are refused until "
            "it can (free tools still work): make that folder writable, or set ATLASCLOUD_STATE_URL to "
            "sqlite:////a/writable/path.db."
        )

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        def step() -> _T:
            import sqlite3

            with self._lock:
                if self._connection is None:
                    self._connection = self._open()
                connection = self._connection
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    try:
                        result = operation(connection)
                    except BaseException:
                        connection.execute("ROLLBACK")
                        raise
                    connection.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    connection.close()  # open afresh next time: the disk may have come back
                    self._connection = None
                    raise self._unavailable(exc) from None

        return await anyio.to_thread.run_sync(step)

    # --- the operations ------------------------------------------------------------------------------------

    async def secret(self) -> bytes:
        def get(connection: sqlite3.Connection) -> bytes:
            connection.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('secret', ?)", (secrets.token_bytes(32),)
            )
            (value,) = connection.execute("SELECT value FROM meta WHERE name = 'secret'").fetchone()
            return bytes(value)

        return await self._run(get)

    @staticmethod
    def _window(connection: sqlite3.Connection, payer: str, now: float, window: float) -> tuple[float, int]:
        # Every payer's old entries go, not just this one's: a payer who never comes back (a key tried once)
        # must not keep a row forever. The wall clock bounds that sweep; this payer's own never runs backwards.
        connection.execute("DELETE FROM ledger WHERE at <= ?", (now - window,))
        (newest,) = connection.execute("SELECT max(at) FROM ledger WHERE payer = ?", (payer,)).fetchone()
        now = max(now, newest if newest is not None else now)
        connection.execute("DELETE FROM ledger WHERE payer = ? AND at <= ?", (payer, now - window))
        (spent,) = connection.execute("SELECT coalesce(sum(micro), 0) FROM ledger WHERE payer = ?", (payer,)).fetchone()
        return now, int(spent)

    @staticmethod
    def _entries(connection: sqlite3.Connection, payer: str) -> tuple[tuple[float, int], ...]:
        rows = connection.execute("SELECT at, micro FROM ledger WHERE payer = ? ORDER BY at", (payer,)).fetchall()
        return tuple((float(at), int(micro)) for at, micro in rows)

    async def reserve(
        self, payer: str, entry: str, micro: int, *, limit_micro: int | None, now: float, window: float
    ) -> Spending:
        def reserve(connection: sqlite3.Connection) -> Spending:
            at, spent = self._window(connection, payer, now, window)
            if limit_micro is not None and spent + micro > limit_micro:
                return Spending(False, spent, at, self._entries(connection, payer))
            connection.execute(
                "INSERT OR REPLACE INTO ledger (payer, entry, at, micro) VALUES (?, ?, ?, ?)", (payer, entry, at, micro)
            )
            return Spending(True, spent + micro, at)

        return await self._run(reserve)

    async def settle(self, payer: str, entry: str, micro: int) -> None:
        def settle(connection: sqlite3.Connection) -> None:
            if micro == 0:  # nothing was billed: nothing to remember (a refused key leaves no row behind)
                connection.execute("DELETE FROM ledger WHERE payer = ? AND entry = ?", (payer, entry))
            else:
                connection.execute("UPDATE ledger SET micro = ? WHERE payer = ? AND entry = ?", (micro, payer, entry))

        await self._run(settle)

    async def spending(self, payer: str, *, now: float, window: float, entries: bool = False) -> Spending:
        def read(connection: sqlite3.Connection) -> Spending:
            at, spent = self._window(connection, payer, now, window)
            return Spending(True, spent, at, self._entries(connection, payer) if entries else ())

        return await self._run(read)

    @staticmethod
    def _held(connection: sqlite3.Connection, key: str, now: float) -> str | None:
        connection.execute("DELETE FROM claims WHERE key = ? AND expires <= ?", (key, now))
        row = connection.execute("SELECT value FROM claims WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    async def claim(self, key: str, value: str, *, ttl: float, now: float) -> str | None:
        def claim(connection: sqlite3.Connection) -> str | None:
            held = self._held(connection, key, now)
            if held is None:
                connection.execute("INSERT INTO claims (key, value, expires) VALUES (?, ?, ?)", (key, value, now + ttl))
            return held

        return await self._run(claim)

    async def swap(self, key: str, old: str, new: str, *, ttl: float, now: float) -> bool:
        def swap(connection: sqlite3.Connection) -> bool:
            if self._held(connection, key, now) != old:
                return False
            connection.execute("UPDATE claims SET value = ?, expires = ? WHERE key = ?", (new, now + ttl, key))
            return True

        return await self._run(swap)

    async def release(self, key: str, value: str) -> None:
        await self._run(
            lambda connection: connection.execute("DELETE FROM claims WHERE key = ? AND value = ?", (key, value))
        )

    async def peek(self, key: str, *, now: float) -> str | None:
        return await self._run(lambda connection: self._held(connection, key, now))

    async def spend_token(self, token: str, *, ttl: float, now: float) -> bool:
        def spend(connection: sqlite3.Connection) -> bool:
            connection.execute("DELETE FROM tokens WHERE expires <= ?", (now,))
            cursor = connection.execute(
                "INSERT OR IGNORE INTO tokens (token, expires) VALUES (?, ?)", (token, now + ttl)
            )
            return cursor.rowcount == 1

        return await self._run(spend)

    async def check(self) -> None:
        await self._run(lambda connection: connection.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await anyio.to_thread.run_sync(close)
