"""Claiming trials among several workers: slots held, dead workers, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.search.storage import open_storage
from nas.search.workers import WORKER, StudyLock, fail_dead, held, mark


def test_held_slots_leave_out_waiting_and_retried_trials() -> None:
    study = optuna.create_study()
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL, TrialState.WAITING):
        study.add_trial(create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None))
    study.ask()  # running
    assert held(study.trials) == 5
    retry = {"failed_trial": 3, "retry_history": [3]}
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs=retry))
    assert held(study.trials) == 4  # trial 3 gave its slot to the waiting retry


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_trial_of_a_dead_worker_is_failed_and_queued_again() -> None:
    study = optuna.create_study()
    alive, dead = study.ask(), study.ask()
    alive.suggest_categorical("width", [4, 8])
    dead.suggest_categorical("width", [4, 8])
    dead.set_user_attr("origin", "zoo:lenet5")
    dead.set_user_attr("latency_ms", 0.5)
    mark(alive)
    mark(dead)
    worker = study.trials[dead.number].system_attrs[WORKER]
    study._storage.set_trial_system_attr(dead._trial_id, WORKER, {**worker, "pid": dead_pid()})
    assert fail_dead(study) == [dead.number]
    trials = study.trials
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[dead.number].state == TrialState.FAIL and "died" in trials[dead.number].user_attrs["failure"]
    again = trials[-1]
    assert again.state == TrialState.WAITING and again.system_attrs["retry_history"] == [dead.number]
    assert again.params == trials[dead.number].params and again.user_attrs == {"origin": "zoo:lenet5"}
    assert WORKER not in again.system_attrs
    assert held(trials) == 1  # the live worker's trial; the retry holds none until claimed
    assert fail_dead(study) == []  # once


def test_a_worker_of_another_machine_is_never_taken_for_dead() -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.study._storage.set_trial_system_attr(trial._trial_id, WORKER, {"machine": "elsewhere", "pid": dead_pid()})
    assert fail_dead(study) == [] and study.trials[0].state == TrialState.RUNNING


@pytest.mark.skipif(os.name != "posix", reason="file locks are POSIX flock")
def test_the_study_lock_of_a_sqlite_file_excludes_other_holders(tmp_path: Path) -> None:
    import fcntl

    url = f"sqlite:///{tmp_path}/w.db"
    lock = StudyLock.of(open_storage(url), url, "s")
    with lock:
        other = os.open(tmp_path / "w.db.nas-lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock.release()  # early, as an objective does; leaving the block releases nothing more
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
    with lock:  # and it can be taken again
        pass


HOLD = """
import sys, time
from nas.search.storage import open_storage
from nas.search.workers import StudyLock
url = sys.argv[1]
lock = StudyLock.of(open_storage(url), url, "s", task="finetune")
assert lock.try_acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(os.name != "posix", reason="file locks are POSIX flock")
def test_a_task_lock_is_taken_by_one_worker_and_goes_with_a_worker_that_dies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    storage = open_storage(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        mine = StudyLock.of(storage, url, "s", task="finetune")
        assert not mine.try_acquire()  # the other process holds it
        with StudyLock.of(storage, url, "s"):  # the study's own lock is another lock
            pass
        other = StudyLock.of(storage, url, "t", task="finetune")
        assert other.try_acquire()  # so is the same task of another study
        other.release()
        holder.kill()  # dies holding it
        holder.wait()
        assert mine.try_acquire()
        assert StudyLock.of(storage, url, "s", task="finetune").try_acquire() is False  # held by this one now
        mine.release()
        assert StudyLock.of(storage, url, "s", task="finetune").try_acquire()
    finally:
        holder.kill()
        holder.wait()


def test_the_study_lock_of_a_journal_file(tmp_path: Path) -> None:
    url = f"journal:{tmp_path}/w.log"
    with StudyLock.of(open_storage(url), url, "s"):
        assert (tmp_path / "w.log.nas-lock").is_file() or os.name != "posix"


def test_tally_counts_a_retried_failure_once() -> None:
    from nas.search.results import tally

    study = optuna.create_study(directions=["maximize", "minimize"])
    dead = study.ask()
    study.tell(dead, state=TrialState.FAIL)
    retry = study.ask()
    study._storage.set_trial_system_attr(retry._trial_id, "retry_history", [dead.number])
    study.tell(retry, [0.5, 1.0])
    study.enqueue_trial({})
    counts = tally(study)
    assert (counts.finished, counts.failed, counts.running, counts.queued) == (1, 0, 0, 1)
