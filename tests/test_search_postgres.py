"""Several ``nas search`` processes on one study in a real PostgreSQL server
finish it with exactly its number of trials, each trial run by one of them.

The server is named by ``NAS_TEST_POSTGRES_URL`` (a SQLAlchemy URL such as
``postgresql+psycopg://nas:nas@127.0.0.1:5432/nas_test``; ``.ci/run`` starts
Debian's server on loopback and sets it). Without it, without a driver, or
with a server that does not answer, the test skips and says which.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.search import load_study
from nas.search.storage import open_storage
from nas.search.workers import StudyLock, advisory_key

URL_VARIABLE = "NAS_TEST_POSTGRES_URL"
WORKERS = 3
TRIALS = 6


@pytest.fixture
def postgres() -> Iterator[str]:
    """The server's URL, once a connection to it has been made."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(f"{URL_VARIABLE} is not set: no PostgreSQL server to test against (.ci/run starts one)")
    import sqlalchemy

    shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(url)
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as e:
        pytest.skip(f"no driver for {shown}: {e} (pip install -e '.[postgres]')")
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:200]
        pytest.skip(f"PostgreSQL server {shown} cannot be reached: {reason}")
    finally:
        engine.dispose()
    yield url


def waiting_for(storage: optuna.storages.RDBStorage, study: str) -> int:
    """How many connections wait for the study's advisory lock."""
    import sqlalchemy

    key = advisory_key(study) % 2**64
    query = sqlalchemy.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = :high AND objid::bigint = :low"
    )
    with storage.engine.connect() as connection:
        return int(connection.execute(query, {"high": key >> 32, "low": key & 0xFFFFFFFF}).scalar_one())


@pytest.mark.slow
def test_workers_finish_a_study_with_exactly_its_trials(postgres: str, tmp_path: Path) -> None:
    study = f"workers-{uuid.uuid4().hex[:12]}"  # reruns on the same database do not meet
    command = [sys.executable, "-m", "nas.cli", "search", "--trials", str(TRIALS), "--objective", "proxy:naswot"]
    command += ["--storage", postgres, "--study", study, "--latency-budget-ms", "50"]
    env = {**os.environ, "NAS_CACHE_DIR": str(tmp_path / "cache")}
    storage = open_storage(postgres)
    assert isinstance(storage, optuna.storages.RDBStorage)
    workers: list[subprocess.Popen[str]] = []
    try:
        # Hold the study's lock until every worker waits for it, so that they
        # all start claiming trials at once (a slow start would leave one idle).
        with StudyLock.of(storage, postgres, study):
            for _ in range(WORKERS):
                pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
                workers.append(subprocess.Popen(command, cwd=tmp_path, env=env, text=True, **pipes))  # type: ignore[call-overload]
            deadline = time.monotonic() + 120
            while waiting_for(storage, study) < WORKERS and time.monotonic() < deadline:
                assert all(w.poll() is None for w in workers), "a worker ended before the study started"
                time.sleep(0.2)
            assert waiting_for(storage, study) == WORKERS, "the workers do not wait for the study's lock"
        ran: list[list[int]] = []
        for worker in workers:
            _, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err
            ran.append([int(n) for n in re.findall(r"^trial\s+(\d+)\s", err, flags=re.MULTILINE)])
        trials = load_study(postgres, study).trials
        states = [(t.number, t.state.name) for t in trials]
        finished = [t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
        assert len(finished) == TRIALS, states
        assert len(set(finished)) == TRIALS, states  # no number twice
        assert not [t for t in trials if t.state == TrialState.RUNNING], states
        # Each worker ran some of them, and no trial was run by two.
        assert all(ran), ran
        assert sorted(n for numbers in ran for n in numbers) == sorted(finished), (ran, states)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        if study in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=study, storage=storage)
        storage.engine.dispose()


def test_a_task_lock_is_taken_by_one_connection(postgres: str) -> None:
    study = f"task-{uuid.uuid4().hex[:12]}"
    storage = open_storage(postgres)
    first = StudyLock.of(storage, postgres, study, task="finetune")
    second = StudyLock.of(storage, postgres, study, task="finetune")
    try:
        assert first.try_acquire()
        assert not second.try_acquire()  # another connection holds it
        with StudyLock.of(storage, postgres, study):  # the study's own lock is another key
            pass
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
