"""Where studies live: Optuna storages opened from a URL, and studies read back.

Storage is the single source of truth of a search: a worker is just another
process on it, and a search resumes from it.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import StorageInternalError
from optuna.storages.journal import JournalFileBackend, JournalStorage

from nas.ir.errors import NASError, one_line


def open_storage(url: str, *, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: any SQLAlchemy URL (``sqlite:///runs/nas.db``,
    ``postgresql://user@host/db``), or ``journal:PATH`` for a journal file.
    Parent folders of SQLite and journal files are created (with
    ``create=False``, a missing file is an error instead). RDB storages
    get a heartbeat, so that a trial whose process died is failed and
    retried once by the next worker.

    Raises:
        NASError: a URL Optuna cannot open (one line, naming it).
    """
    hint = "give an Optuna storage URL: sqlite:///runs/nas.db, postgresql://user:pass@host/db or journal:runs/nas.log"
    try:
        local = None
        if url.startswith("journal:"):
            local = Path(url.removeprefix("journal:").removeprefix("//"))
        elif url.startswith("sqlite:///") and url.removeprefix("sqlite:///") not in ("", ":memory:"):
            local = Path(url.removeprefix("sqlite:///"))
        if local is not None and not create and not local.is_file():
            raise NASError(f"no storage file {local}", field="storage", hint="give the --storage the search used")
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:").removeprefix("//"))
            return JournalStorage(_JournalFile(str(path)))
        if "://" not in url:
            raise ValueError("not a URL")
        # The retry callback was renamed in Optuna 4.9; both forms re-queue a
        # dead worker's trial once.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
            callback = {"heartbeat_stale_trial_callback": retry(max_retry=1)} if retry else {}
            if not callback:
                callback = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
            attempts = 5
            for attempt in range(attempts):
                try:
                    kind = _SQLiteStorage if url.startswith("sqlite:") else optuna.storages.RDBStorage
                    return kind(url, heartbeat_interval=60, grace_period=180, **callback)
                except Exception as e:
                    # Workers started together race to create the tables of a
                    # new database (SQLite reports "already exists", "unique
                    # constraint" or "locked"); the loser finds them made on a retry.
                    message = str(e).lower()
                    racing = any(m in message for m in ("unique constraint", "already exists", "database is locked"))
                    if attempt == attempts - 1 or not racing:
                        raise
                    time.sleep(0.5 * (attempt + 1))
            raise AssertionError("unreachable")
    except NASError:
        raise
    except Exception as e:  # SQLAlchemy and drivers raise many kinds
        reason = one_line(e, 200)
        raise NASError(f"cannot open storage '{url}': {reason}", field="storage", hint=hint) from None


class _SQLiteStorage(optuna.storages.RDBStorage):
    """An RDB storage on SQLite whose connections write ahead (``journal_mode=WAL``)
    and sync at checkpoints (``synchronous=NORMAL``): Optuna commits every
    parameter and attribute of a trial on its own, and a commit that waits
    for the disk each time slows a search whose trials take a fraction of a
    second (over a supernet). A committed trial survives the process dying; only
    the operating system dying can take back the last commits, and the
    database stays whole. Readers no longer block the workers' writes."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._write_ahead()

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._write_ahead()

    def _write_ahead(self) -> None:
        sqlalchemy.event.listen(self.engine, "connect", _write_ahead)
        self.engine.dispose()  # the connections that made the tables predate the listener
        # Connect now: turning a new file to WAL can meet another worker doing
        # the same and be told "locked" at once, which open_storage retries.
        with self.engine.connect():
            pass


def _write_ahead(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


class _JournalFile(JournalFileBackend):
    """A journal file whose failed writes (a full disk) are storage errors, as
    an RDB storage's are, so that :func:`storage_errors` tells them from the
    errors of the rest of a search."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            super().append_logs(logs)
        except OSError as e:
            raise StorageInternalError(f"cannot append to {self._file_path}: {e.strerror or e}") from e


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a storage that cannot be written (a full disk, a lost database)
    into one line naming it. What was committed before stays: Optuna
    writes each attribute of a trial in its own transaction.

    Raises:
        NASError: in place of Optuna's ``StorageInternalError``.
    """
    try:
        yield
    except StorageInternalError as e:
        raise NASError(
            f"cannot write to storage '{url}': {_cause(e)}",
            field="storage",
            hint="free some disk space, then run the same command again: the search resumes from what was stored",
        ) from None


def _cause(error: BaseException) -> str:
    """The reason under Optuna's storage error (the driver's message, say
    ``database or disk is full``), on one line."""
    cause: BaseException = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return one_line(getattr(cause, "orig", None) or cause, 200)  # orig: SQLAlchemy's driver error


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines would interleave with the progress bar;
    its experimental-feature warnings say nothing to a user of nas."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)


def load_study(storage: str, study: str | None = None) -> optuna.Study:
    """Open an existing study for reading (``None``: the storage's only study).

    Raises:
        NASError: a bad storage URL, or no study of that name (listing those there are).
    """
    opened = open_storage(storage, create=False)
    names = [s.study_name for s in optuna.get_all_study_summaries(opened, include_best_trial=False)]
    if study is None and len(names) == 1:
        study = names[0]
    if study is None:
        raise NASError(
            f"storage '{storage}' holds {len(names)} studies",
            field="study",
            hint=f"name one with --study: {', '.join(names)}" if names else "run 'nas search' first",
        )
    if study not in names:
        raise NASError(
            f"no study '{study}' in storage '{storage}'",
            field="study",
            hint=f"studies there: {', '.join(names)}" if names else "run 'nas search' first",
        )
    with quiet_optuna():
        return optuna.load_study(study_name=study, storage=opened)


__all__ = ["load_study", "open_storage", "quiet_optuna", "storage_errors"]
