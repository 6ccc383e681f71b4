"""The measurement store: SQLite in WAL mode, shared by every process.

A search runs many workers that ask for the same latencies; the store lets
each measurement be made once per machine and survive restarts. Design:

* **Append-only.** Rows are never updated or deleted; a fresh measurement of
  the same key (``refresh=True``) is a new row and the newest row answers.
  Nothing stored is ever lost, and the history shows drift over time.
* **Concurrent.** WAL mode lets readers proceed while one process writes;
  writers queue on SQLite's lock for up to ``timeout_s``. Every process
  opens its own connection (one opened before a ``fork`` is not reused).
* **Durable.** ``synchronous=FULL``: a write is on disk when ``put`` returns.
  Writes are one per measurement (each costs far more than an fsync).
* **Loud.** A corrupt, locked or unwritable file is a one-line
  :class:`~nas.ir.errors.NASError` naming the file and what to do; the store
  never deletes or recreates a file it cannot read.

The default file is ``$NAS_CACHE_DIR/latency.sqlite``, else
``$XDG_CACHE_HOME/nas/latency.sqlite``, else ``~/.cache/nas/latency.sqlite``.
SQLite's locking needs a local file system (not NFS).

Example:
    >>> import tempfile
    >>> store = LatencyCache(tempfile.mkdtemp() + "/latency.sqlite")
    >>> store.get("no such key") is None
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.ir.errors import NASError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    graph_hash TEXT,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    median_ms REAL,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_key ON measurements (key, id);
CREATE INDEX IF NOT EXISTS measurements_graph ON measurements (graph_hash);
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_key ON facts (key, id);
"""


def default_cache_path() -> Path:
    """Where measurements are kept unless told otherwise (see the module doc)."""
    if os.environ.get("NAS_CACHE_DIR"):
        root = Path(os.environ["NAS_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]) / "nas"
    else:
        root = Path.home() / ".cache" / "nas"
    return root / "latency.sqlite"


class LatencyCache:
    """Measurements by key, and small facts about devices (measured peaks).

    Args:
        path: the SQLite file; :func:`default_cache_path` if ``None``.
        timeout_s: how long a writer waits for another process's lock.

    Records are JSON objects; the caller defines their content (see
    :class:`nas.latency.Measurement`), the store only files them by key with
    a few columns (hash, backend, device, precision, batch, median) that a
    latency-table builder can query without decoding every record.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.timeout_s = timeout_s
        self._connection: sqlite3.Connection | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"LatencyCache({str(self.path)!r})"

    # -- measurements -----------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The newest record stored under ``key``, or ``None``."""
        with self._guard("read") as db:
            row = db.execute(
                "SELECT record FROM measurements WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Append ``record`` under ``key`` (earlier records stay)."""
        columns = (
            key,
            record.get("graph_hash"),
            record["backend"],
            record["device"],
            record["precision"],
            record["batch"],
            record.get("median_ms"),
            json.dumps(record, sort_keys=True),
            time.time(),
        )
        with self._guard("write") as db, _transaction(db):
            db.execute(
                "INSERT INTO measurements"
                " (key, graph_hash, backend, device, precision, batch, median_ms, record, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                columns,
            )

    def history(self, key: str) -> list[dict[str, Any]]:
        """Every record stored under ``key``, oldest first."""
        with self._guard("read") as db:
            rows = db.execute("SELECT record FROM measurements WHERE key = ? ORDER BY id", (key,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def __len__(self) -> int:
        with self._guard("read") as db:
            return int(db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    # -- facts (device peaks and the like) ----------------------------------

    def get_fact(self, key: str) -> dict[str, Any] | None:
        """The newest fact stored under ``key``, or ``None``."""
        with self._guard("read") as db:
            row = db.execute("SELECT record FROM facts WHERE key = ? ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_fact(self, key: str, record: dict[str, Any]) -> None:
        """Append a fact under ``key``."""
        with self._guard("write") as db, _transaction(db):
            db.execute(
                "INSERT INTO facts (key, record, created) VALUES (?, ?, ?)",
                (key, json.dumps(record, sort_keys=True), time.time()),
            )

    def close(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None

    # -- internals ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; writes take the lock
        # up front with BEGIN IMMEDIATE, so two writers queue instead of
        # deadlocking on a lock upgrade.
        # Two processes turning a new file to WAL at once each hold a shared
        # lock and want an exclusive one: SQLite breaks the deadlock by telling
        # one "locked" at once, without its busy handler. Opening is retried,
        # with backoff, for as long as a writer would wait.
        deadline, pause = time.monotonic() + self.timeout_s, 0.01
        while True:
            db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            try:
                self._prepare(db)
            except sqlite3.OperationalError as e:
                db.close()
                if not _busy(e) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(2 * pause, 0.5)
                continue
            except BaseException:
                db.close()
                raise
            self._connection, self._pid = db, os.getpid()
            return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Settings of a new connection, and the schema where the file lacks it."""
        db.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise NASError(
                f"latency cache {self.path} has schema {version}, newer than this nas knows ({SCHEMA_VERSION})",
                hint="upgrade nas, or point NAS_CACHE_DIR elsewhere",
            )
        if version < SCHEMA_VERSION:
            with _transaction(db):  # CREATE ... IF NOT EXISTS in one transaction: safe to race
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[sqlite3.Connection]:
        """Turn SQLite's failures into one-line NASErrors that say what to do."""
        try:
            yield self._connect()
        except sqlite3.DatabaseError as e:
            self.close()
            text = str(e)
            if _busy(e):
                hint = f"another process held it for over {self.timeout_s:g} s; retry, or use another NAS_CACHE_DIR"
            elif "not a database" in text or "malformed" in text or "corrupt" in text:
                hint = "move the file aside (nas never deletes it) and run again to start a new cache"
            elif "readonly" in text or "unable to open" in text or "disk" in text:
                hint = "check that its folder is writable and has space, or set NAS_CACHE_DIR"
            else:
                hint = "set NAS_CACHE_DIR to use another cache"
            raise NASError(f"latency cache {self.path}: cannot {action}: {text}", hint=hint) from None
        except OSError as e:
            raise NASError(
                f"latency cache {self.path}: cannot {action}: {e.strerror or e}",
                hint="check that its folder is writable, or set NAS_CACHE_DIR",
            ) from None


def _busy(error: sqlite3.DatabaseError) -> bool:
    """SQLite's answer when another connection holds the lock."""
    return "locked" in str(error) or "busy" in str(error)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
