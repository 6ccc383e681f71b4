"""The last step of a search over a supernet: fine-tune its leaders and keep the best.

Inherited accuracy ranks a supernet's networks roughly, and a network's
accuracy after a few epochs of fine-tuning is what the user gets. Between
the two, a short fine-tune from the inherited weights ranks networks better
than inherited accuracy does, and better than the same short training from
scratch (``examples/bench_supernet.py --screen-epochs``; figures in the
README). So :func:`finetune_best` screens ``count`` contenders of a
study (:func:`nas.search.results.contenders`: the most accurate feasible
networks, the costliest first among those whose scores the validation
noise ties) with ``screen_epochs`` of fine-tuning each, and fine-tunes the
one most accurate after it for ``epochs`` from its inherited weights:
successive halving (Jamieson & Talwalkar 2016) with one rung between the
search and the export.

Several workers share a study; :func:`finetune_once` fine-tunes its
leaders once among them (the last to finish does it, under a lock of the
study that goes with a worker that dies) and records what it kept in the
study, so that a worker that finishes early, or the same command run
again, reports that network instead of training it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.data import DataSet
from nas.export import Model
from nas.ir.errors import NASError
from nas.search.record import FINETUNED_ATTR
from nas.search.results import contenders, trial_model
from nas.search.workers import StudyLock
from nas.train import Recipe, TrainResult, train

FINALISTS = 3
"""Networks screened by default: one epoch of fine-tuning each ranks them
better than inheritance does, for a few seconds (figures in the README)."""


@dataclass
class Finetuned:
    """The network a search's fine-tuning kept: its trial, its network with
    the inherited weights (``model``), the fine-tuning's result, and each
    finalist's accuracy after the screening epochs by trial number (empty
    where there was one finalist)."""

    trial: FrozenTrial
    model: Model
    result: TrainResult
    screened: dict[int, float] = field(default_factory=dict)


def finetune_best(
    study: optuna.Study,
    data: DataSet,
    *,
    count: int = FINALISTS,
    screen_epochs: int = 1,
    epochs: int = 2,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    storage: str | None = None,
    device: str | torch.device | None = None,
    workers: int | None = None,
    finalists: Sequence[FrozenTrial] | None = None,
) -> Finetuned:
    """Fine-tune the best of a study's ``count`` leaders (see module docs;
    ``finalists``, where a caller chose them already) on ``device``, images
    on disk decoded by ``workers`` processes (both as :func:`nas.train.train`
    reads them).

    Raises:
        NASError: no feasible trial, a leader's weights missing, or counts
            below 1.
        EvaluationFailed: a fine-tuning run failed.
    """
    for name, value in (("finalists", count), ("screen-epochs", screen_epochs), ("finetune-epochs", epochs)):
        if value < 1:
            raise NASError(f"fine-tuning needs {name} of 1 or more, got {value}", field=name, hint="give 1 or more")
    if finalists is None:
        finalists = contenders(study, count, len(data.val))
    if not finalists:
        raise NASError(
            f"study '{study.study_name}' has no finished trial within its latency budget",
            hint="run more trials, or search again with a larger --latency-budget-ms",
        )
    models = {t.number: trial_model(study, t, storage=storage) for t in finalists}
    tune = partial(train, data=data, recipe=recipe, seed=seed, device=device, workers=workers)
    screened: dict[int, float] = {}
    if len(finalists) > 1:
        for t in finalists:
            m = models[t.number]
            screened[t.number] = tune(m.graph, epochs=screen_epochs, weights=m.weights).accuracy
    # Ties (and a single finalist) go to the first of the contenders.
    chosen = max(finalists, key=lambda t: screened[t.number]) if screened else finalists[0]
    model = models[chosen.number]
    result = tune(model.graph, epochs=epochs, weights=model.weights)
    return Finetuned(chosen, model, result, screened)


@dataclass(frozen=True)
class Outcome:
    """What :func:`finetune_once` did: the record of the network kept
    (``trial``, ``accuracy``, ``screened``, ``directory`` and the settings),
    ``reused`` where an earlier run with the same settings and leaders made
    it; or no record and why another worker fine-tunes (``elsewhere``)."""

    record: dict[str, Any] | None
    reused: bool = False
    elsewhere: str | None = None


def finetune_once(
    study: optuna.Study,
    data: DataSet,
    export: Callable[[Finetuned], Path],
    *,
    count: int = FINALISTS,
    screen_epochs: int = 1,
    epochs: int = 2,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    storage: str | None = None,
    device: str | torch.device | None = None,
    workers: int | None = None,
) -> Outcome:
    """:func:`finetune_best` (same arguments), then ``export`` of what it kept
    (which returns the folder written), once among the workers of ``study``.

    A worker that finds trials still running leaves it to the last of them
    to finish; of workers that finish together, the one that takes the
    study's fine-tuning lock does it. Done, the record goes into the study
    (:data:`nas.search.record.FINETUNED_ATTR`, which ``nas results``
    shows): a later call with the same settings, while the leaders are the
    same and the folder is there, returns it instead of training again.

    Raises:
        as :func:`finetune_best`; NASError from ``export``.
    """
    settings: dict[str, Any] = {"finalists": count, "screen_epochs": screen_epochs, "epochs": epochs, "seed": seed}
    leaders = contenders(study, count, len(data.val))
    settings["leaders"] = [t.number for t in leaders]
    running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if running:
        numbers = ", ".join(map(str, running))
        return Outcome(None, elsewhere=f"trials {numbers} still run in other workers; the last of them fine-tunes")
    task = StudyLock.of(study._storage, storage or "", study.study_name, task="finetune")
    if not task.try_acquire():
        return Outcome(None, elsewhere="another worker of the study is fine-tuning its leaders")
    try:
        done = study.user_attrs.get(FINETUNED_ATTR)
        same = isinstance(done, dict) and {k: done.get(k) for k in settings} == settings
        if same and isinstance(done.get("directory"), str) and (Path(done["directory"]) / "model.json").is_file():
            return Outcome(done, reused=True)
        kept = finetune_best(
            study,
            data,
            count=count,
            screen_epochs=screen_epochs,
            epochs=epochs,
            recipe=recipe,
            seed=seed,
            storage=storage,
            device=device,
            workers=workers,
            finalists=leaders,  # the leaders recorded are the ones screened
        )
        folder = export(kept)
        record = settings | {
            "trial": kept.trial.number,
            "accuracy": kept.result.accuracy,
            "screened": {str(n): a for n, a in kept.screened.items()},
            "directory": str(folder.resolve()),  # found again from any folder the command runs in
        }
        study.set_user_attr(FINETUNED_ATTR, record)
        return Outcome(record)
    finally:
        task.release()
