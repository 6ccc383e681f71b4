"""The searcher: Optuna studies over a search space under a latency budget.

* :mod:`nas.search.proxies`: zero-cost proxies, the cheap accuracy objective
  (a short training run, :mod:`nas.train`, on :mod:`nas.data`, is the other);
* :mod:`nas.search.sampler`: decisions as Optuna parameters, and an
  evolutionary sampler that mutates the space's assignments;
* :mod:`nas.search.study`: the search itself (:func:`run_search`);
* :mod:`nas.search.results`: the feasible Pareto front, pictures, the best model;
* :mod:`nas.search.finalists`: a supernet search's best networks screened by
  a short fine-tune, the best of them fine-tuned.

Example:
    >>> from nas.search import SearchConfig, run_search
    >>> result = run_search(SearchConfig(trials=6, objective="proxy:naswot"))   # doctest: +SKIP
    >>> result.best_dir                                                         # doctest: +SKIP
    PosixPath('runs/early-digits/best')
"""

from nas.search.results import export_best, pareto_front, report
from nas.search.storage import load_study, open_storage
from nas.search.study import OBJECTIVES, SAMPLERS, SearchConfig, SearchResult, run_search

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "SearchResult",
    "export_best",
    "load_study",
    "open_storage",
    "pareto_front",
    "report",
    "run_search",
]
