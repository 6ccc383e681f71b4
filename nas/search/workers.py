"""Several processes on one study: each trial is claimed under a lock, so that
the study ends with exactly its number of trials.

A study of ``n`` trials has ``n`` slots. A trial holds one from the moment a
worker claims it (creates it, or pops a queued one) until the end: running,
complete, pruned or failed. A failed trial that was retried (requeued as a
new trial, after its worker died) gives its slot to the retry. A worker
claims a trial only while fewer than ``n`` are held, and counting and
claiming happen under one lock per study (:class:`StudyLock`), so that two
workers never take the last slot both.

Optuna's own ``MaxTrialsCallback`` counts at the end of a trial instead, and
lets every worker that started one while the study was one short finish it.

A running trial whose worker died still holds its slot. Its worker is
recorded on the trial (host, process id, start time); a worker on the same
machine that finds the process gone fails the trial and queues it again at
once, and trials of other machines are failed by Optuna's heartbeat after its
grace period.

Example:
    >>> lock = StudyLock.of(storage, "sqlite:///runs/nas.db", "early-digits")   # doctest: +SKIP
    >>> with lock:                                                            # doctest: +SKIP
    ...     if held(study.get_trials(deepcopy=False)) < 16:
    ...         study.optimize(objective, n_trials=1)  # the objective releases the lock first
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import socket
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from nas.search.record import NATIVE_CONSTRAINT_PREFIX, WORKER_ATTR, TrialRecord

try:
    import fcntl
except ImportError:  # not POSIX: file locks are no-ops
    fcntl = None  # type: ignore[assignment]

WORKER = WORKER_ATTR
"""The system attribute that records which process runs a trial."""
KEEP_ON_RETRY = ("origin",)
"""The user attributes a requeued trial keeps (the rest is measured again)."""


class StudyLock:
    """Mutual exclusion among the workers of one study, on any machine that
    reaches the storage: a PostgreSQL advisory lock (held by a transaction,
    so that it goes with a dead worker's connection), or an exclusive
    ``flock`` of ``FILE.nas-lock`` beside a SQLite or journal file. Other
    storages get no lock (each claim is then checked, but two workers may
    still race for the last slot).

    :meth:`release` may be called early (an objective does, once its trial is
    claimed) and again on leaving the ``with`` block.

    A lock of a ``task`` (``StudyLock.of(..., task="finetune")``) is another
    lock of the same study, for one piece of work that a single worker
    should do (:meth:`try_acquire` tells whether this one got it). Either
    kind goes with its holder: a process that dies releases it.
    """

    def __init__(self, acquire: Callable[[bool], Callable[[], None] | None]) -> None:
        self._acquire = acquire
        self._release: Callable[[], None] | None = None

    @classmethod
    def of(cls, storage: optuna.storages.BaseStorage, url: str, study: str, task: str = "") -> StudyLock:
        """The lock of ``study`` in ``storage`` (opened from ``url``, or a study's
        own, which Optuna wraps in a cache), or of one ``task`` of it."""
        storage = getattr(storage, "_backend", storage)
        if isinstance(storage, optuna.storages.RDBStorage):
            engine = storage.engine
            if engine.dialect.name == "postgresql":
                key = advisory_key(f"{study}\0{task}" if task else study)
                return cls(lambda blocking: _advisory_lock(engine, key, blocking))
            database = engine.url.database
            if engine.dialect.name == "sqlite" and database and database != ":memory:":
                path = _lock_file(Path(database), study, task)
                return cls(lambda blocking: _file_lock(path, blocking))
        elif url.startswith("journal:"):
            path = _lock_file(Path(url.removeprefix("journal:").removeprefix("//")), study, task)
            return cls(lambda blocking: _file_lock(path, blocking))
        return cls(lambda blocking: lambda: None)

    def acquire(self) -> None:
        if self._release is None:
            self._release = self._acquire(True)

    def try_acquire(self) -> bool:
        """Take the lock if no other holder has it; whether this one holds it now."""
        if self._release is None:
            self._release = self._acquire(False)
        return self._release is not None

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def advisory_key(study: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit key) of a study."""
    digest = hashlib.blake2b(f"nas:{study}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _advisory_lock(engine: Any, key: int, blocking: bool) -> Callable[[], None] | None:
    connection = engine.connect()
    try:
        if blocking:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        elif not connection.execute(sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
            connection.close()
            return None
    except BaseException:
        connection.close()
        raise
    return connection.close  # ends the transaction, and with it the lock


def _lock_file(storage: Path, study: str, task: str) -> Path:
    """The file locked beside a SQLite or journal file: one for its studies'
    trials, one per study and task."""
    if not task:
        return storage.with_name(f"{storage.name}.nas-lock")
    digest = hashlib.blake2b(study.encode(), digest_size=4).hexdigest()
    return storage.with_name(f"{storage.name}.{task}-{digest}.nas-lock")


def _file_lock(path: Path, blocking: bool) -> Callable[[], None] | None:
    if fcntl is None:  # not POSIX: no lock
        return lambda: None
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return lambda: os.close(descriptor)  # closing releases the lock


def retried(trials: Sequence[FrozenTrial]) -> set[int]:
    """The numbers of the failed trials that were queued again (by Optuna's
    retry callback, which records them in ``retry_history``)."""
    return {n for t in trials for n in TrialRecord.of(t).retry_history}


def held(trials: Sequence[FrozenTrial]) -> int:
    """How many slots the trials hold: running, complete, pruned, and failed
    but not retried (a waiting trial holds none until it is claimed)."""
    again = retried(trials)
    return sum(
        1
        for t in trials
        if t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in again)
    )


def mark(trial: optuna.Trial) -> None:
    """Record this process as the one running ``trial``."""
    worker: dict[str, Any] = {"machine": _machine(), "pid": os.getpid(), "started": _started(os.getpid())}
    TrialRecord.store(trial, worker=worker)


def fail_dead(study: optuna.Study) -> list[int]:
    """Fail the running trials whose worker process, on this machine, is
    gone, and queue each again once; returns their numbers."""
    storage, failed = study._storage, []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord.of(t).worker
        if not isinstance(worker, dict) or not _is_dead(worker):
            continue
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            TrialRecord.store((storage, t._trial_id), failure=f"its worker (process {worker['pid']}) died")
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                failed.append(t.number)
                again = copy.deepcopy(storage.get_trial(t._trial_id))
                again.user_attrs = {k: v for k, v in again.user_attrs.items() if k in KEEP_ON_RETRY}
                again.system_attrs = {
                    k: v
                    for k, v in again.system_attrs.items()
                    if k != WORKER and not k.startswith(NATIVE_CONSTRAINT_PREFIX)
                }
                _retry(study, again)
    return failed


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    # The retry callback was renamed in Optuna 4.9; both queue a trial once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        retry = retry or optuna.storages.RetryFailedTrialCallback
        retry(max_retry=1)(study, trial)


def _machine() -> str:
    """Where process ids mean the same: the host name and, on Linux, the boot
    and the process-id namespace (containers on one host share the first two)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts += [Path("/proc/sys/kernel/random/boot_id").read_text().strip(), os.readlink("/proc/self/ns/pid")]
    return "/".join(parts)


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` from the third (state) on, or ``None``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _started(pid: int) -> str | None:
    """When the process started (Linux: clock ticks since boot), which tells
    it from a later process that got the same id."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _is_dead(worker: dict[str, Any]) -> bool:
    """Whether the recorded worker is a process of this machine that is gone;
    ``False`` wherever that cannot be told."""
    if os.name != "posix" or worker.get("machine") != _machine():
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    fields = _stat(pid)
    if fields is None:
        return False
    return fields[0] in ("Z", "X") or (worker.get("started") is not None and _started(pid) != worker["started"])


__all__ = ["WORKER", "StudyLock", "advisory_key", "fail_dead", "held", "mark", "retried"]
