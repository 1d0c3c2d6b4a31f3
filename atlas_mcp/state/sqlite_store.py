"""The embedded default: one SQLite file in the user's data directory, shared by every server process on the machine.

Claude Desktop and Cursor may each run a server at the same time, against the same file. WAL lets readers and
one writer go on together; every write is one short ``BEGIN IMMEDIATE`` transaction, so two processes queue for
a few milliseconds instead of interleaving; ``busy_timeout`` bounds that queue. sqlite3 blocks, so each
operation runs in a worker thread, one at a time per process.

A file that cannot be opened (read-only disk, a folder we may not create) makes every operation raise
:class:`StateUnavailableError`: paid calls fail closed, free tools never come here. A damaged file (not a
database any more, or failing its integrity check) is moved aside and a new one made, carrying over what the old
one still lets us read: its secret (so payers keep their names), its ledger (so the budget's 24 h total holds),
its spent confirmation tokens (so none is good twice) and, if it can, its repeat claims. When the ledger cannot
be read, resetting the budget is the user's decision, not ours: the moved-aside file is named
``state.db.unreadable-<time>``, and paid calls are refused, with a message that says so, until it is deleted.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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

_UNREADABLE = ".unreadable-"  # the name of a damaged file whose ledger could not be carried over

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

        carried: _Salvage | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._refuse_while_unconfirmed()
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # the ledger is nobody else's business
            return self._connect()
        except sqlite3.OperationalError as exc:  # read-only, locked, no space: not the file's fault
            raise self._unavailable(exc) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", or a failed integrity check
            carried = self._move_aside(exc, _salvage(self.path))
        except OSError as exc:
            raise self._unavailable(exc) from None
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            connection = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from None
        try:
            if carried is not None:
                carried.restore(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise self._unavailable(exc) from None
        return connection

    def _refuse_while_unconfirmed(self) -> None:
        """A damaged file whose spending could not be read stops paid calls until the user deletes it: only they
        may decide that the budget starts again from zero."""
        for aside in sorted(self.path.parent.glob(f"{self.path.name}{_UNREADABLE}*")):
            raise self._unconfirmed(aside)

    def _unconfirmed(self, aside: Path) -> StateUnavailableError:
        return StateUnavailableError(
            f"The spend-safety state file {self.path} was damaged, and the last 24 hours of spending could not "
            f"be read from it (it was moved to {aside}), so the budget cannot be held. Paid generations are "
            f"refused until you confirm that the budget may start again from zero: delete {aside} (free tools "
            "still work)."
        )

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

    def _move_aside(self, exc: sqlite3.DatabaseError, carried: _Salvage | None) -> _Salvage:
        """Move the damaged file aside. Returns what a new file starts with, or raises (after the move) when the
        spending could not be read: then paid calls wait for the user (:meth:`_refuse_while_unconfirmed`)."""
        kind = ".corrupt-" if carried is not None else _UNREADABLE
        aside = self.path.with_name(f"{self.path.name}{kind}{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as moved:
            raise self._unavailable(moved) from None
        if carried is None:
            logger.error(
                "the spend-safety state file %s is damaged (%s) and its spending cannot be read: moved it to %s; "
                "paid generations are refused until that file is deleted",
                self.path,
                " ".join(str(exc).split())[:160],  # a failed check lists every page
                aside.name,
            )
            raise self._unconfirmed(aside)
        logger.warning(
            "the spend-safety state file %s is damaged (%s): moved it to %s and started a new one, carrying over "
            "its secret, its %d ledger entries and its spent confirmation tokens",
            self.path,
            " ".join(str(exc).split())[:160],  # a failed check lists every page
            aside.name,
            len(carried.ledger),
        )
        return carried

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


@dataclass(frozen=True)
class _Salvage:
    """What a damaged state file still gives: enough to go on as if it had not been damaged."""

    secret: bytes
    ledger: list[tuple[str, str, float, int]]
    tokens: list[tuple[str, float]]
    claims: list[tuple[str, str, float]]

    def restore(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('secret', ?)", (self.secret,))
        connection.executemany("INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?)", self.ledger)
        connection.executemany("INSERT OR REPLACE INTO tokens (token, expires) VALUES (?, ?)", self.tokens)
        connection.executemany("INSERT OR REPLACE INTO claims (key, value, expires) VALUES (?, ?, ?)", self.claims)
        connection.execute("COMMIT")


def _salvage(path: Path) -> _Salvage | None:
    """Read what matters out of a damaged file, or None when its secret, ledger or spent tokens are unreadable
    (without the secret, the ledger's payers cannot be named again; without the tokens, a spent one would pay
    twice). Repeat claims are carried when they can be: losing them risks a repeat, never the budget."""
    import sqlite3

    try:
        damaged = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return None
    try:
        row = damaged.execute("SELECT value FROM meta WHERE name = 'secret'").fetchone()
        if row is None or len(bytes(row[0])) != 32:
            return None
        ledger = [(str(p), str(e), float(a), int(m)) for p, e, a, m in damaged.execute("SELECT * FROM ledger")]
        tokens = [(str(t), float(x)) for t, x in damaged.execute("SELECT token, expires FROM tokens")]
        try:
            held = damaged.execute("SELECT key, value, expires FROM claims")
            claims = [(str(k), str(v), float(x)) for k, v, x in held]
        except sqlite3.Error:
            claims = []
        return _Salvage(bytes(row[0]), ledger, tokens, claims)
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        damaged.close()
