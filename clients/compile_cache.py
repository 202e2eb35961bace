"""Capture's compiled step, kept on disk: compiled once per machine, not once per run.

``torch.compile`` (inductor) keeps what it generates (FX graphs, AOTAutograd's joint graphs,
the C++ it built) in ``TORCHINDUCTOR_CACHE_DIR``, by default a folder in /tmp.  fedsim points
it at its own cache folder, ``$XDG_CACHE_HOME/fedsim/compile/torch-<version>``, so that the
workers of a run, and every later run of the same step, share it, and a cleaned /tmp does
not cost a cold compile.  What the cache cannot save is Dynamo's trace of the step in each
new process: on 2 cores the 2NN's step compiled in 17.7 s cold and 2.2 s from the cache.

A user's own ``TORCHINDUCTOR_CACHE_DIR`` wins.  The counters tell whether a compile came
from the cache: each worker's report says so (fedsim/sim/cohort_engine.py logs it).  Each
step compiled leaves a mark (:func:`mark`), by which fedsim/sim/engine_choice.py knows,
before any worker starts, that a run's step would come from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fedsim.data.roots import cache_dir
from fedsim.scenario.sections import ClientConfig

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


def step_key(model: nn.Module, cfg: ClientConfig, mu: float) -> str:
    """What identifies a cohort step across processes: the model's layers, the update's constants."""
    text = f"{torch.__version__}|{model}|{cfg}|{mu!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mark(key: str) -> None:
    """Note that the step ``key`` compiled here, so a later run's engine choice knows it is on disk."""
    with contextlib.suppress(OSError):  # a read-only cache costs a compile, never the run
        path = folder() / "fedsim-steps"
        path.mkdir(parents=True, exist_ok=True)
        (path / key).touch()


def marked(key: str) -> bool:
    """Whether the step ``key`` compiled before on this machine (:func:`mark`)."""
    return (folder() / "fedsim-steps" / key).exists()
