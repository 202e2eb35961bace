"""Capture's compiled step, kept on disk: compiled once per machine, not once per run.

``torch.compile`` (inductor) keeps what it generates (FX graphs, AOTAutograd's joint graphs,
the C++ it built) in ``TORCHINDUCTOR_CACHE_DIR``, by default a folder in /tmp.  fedsim points
it at its own cache folder, ``$XDG_CACHE_HOME/fedsim/compile/torch-<version>``, so that the
workers of a run, and every later run of the same step, share it, and a cleaned /tmp does
not cost a cold compile.  What the cache cannot save is Dynamo's trace of the step in each
new process: on 2 cores the 2NN's step compiled in 17.7 s cold and 2.2 s from the cache.

A user's own ``TORCHINDUCTOR_CACHE_DIR`` wins.  The counters tell whether a compile came
from the cache: each worker's report says so (fedsim/sim/cohort_engine.py logs it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from fedsim.data.roots import cache_dir

ENV = "TORCHINDUCTOR_CACHE_DIR"


def folder() -> Path:
    """Where compiled steps are kept: the user's choice, else fedsim's cache per torch version."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get(ENV)
    # Inductor writes its default into the environment at its first look: that is not a choice.
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    return cache_dir() / "compile" / f"torch-{torch.__version__}"


def use() -> Path:
    """Point inductor's caches at :func:`folder` (before the first compile in this process)."""
    path = folder()
    os.environ[ENV] = str(path)  # inductor reads it at each look-up, so setting it now is in time
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = True  # on by default in recent torch; a user's config may turn it off
    return path


@dataclass(frozen=True)
class Lookups:
    """The cache's answers so far in this process: compiled graphs found, and those built."""

    hits: int
    misses: int

    @classmethod
    def now(cls) -> Lookups:
        from torch._dynamo.utils import counters

        return cls(counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"])

    def __sub__(self, before: Lookups) -> Lookups:
        return Lookups(self.hits - before.hits, self.misses - before.misses)
