"""The searcher: Optuna studies over a search space under a latency budget.

* :mod:`nas.search.data`: the images a search trains on (built-in digits,
  ``.npz`` arrays, image folders), split once and resized per network;
* :mod:`nas.search.train` and :mod:`nas.search.proxies`: the accuracy
  objective, by a short training run or a zero-cost proxy;
* :mod:`nas.search.sampler`: decisions as Optuna parameters, and an
  evolutionary sampler that mutates the space's assignments;
* :mod:`nas.search.study`: the search itself (:func:`run_search`);
* :mod:`nas.search.results`: the feasible Pareto front, pictures, the best model.

Example:
    >>> from nas.search import SearchConfig, run_search
    >>> result = run_search(SearchConfig(trials=6, objective="proxy:naswot"))   # doctest: +SKIP
    >>> result.best_dir                                                         # doctest: +SKIP
    PosixPath('runs/early-digits/best')
"""

from nas.search.data import Split, load_data
from nas.search.results import export_best, pareto_front, report
from nas.search.storage import load_study, open_storage
from nas.search.study import OBJECTIVES, SAMPLERS, SearchConfig, SearchResult, run_search

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SearchConfig",
    "SearchResult",
    "Split",
    "export_best",
    "load_data",
    "load_study",
    "open_storage",
    "pareto_front",
    "report",
    "run_search",
]
