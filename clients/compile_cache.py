"""Capture's compiled step, kept on disk: compiled once per machine, not once per run.

``torch.compile`` (inductor) keeps what it generates (FX graphs, AOTAutograd's joint graphs,
the C++ it built) in ``TORCHINDUCTOR_CACHE_DIR``, by default a folder in /tmp.  fedsim points
it at its own cache folder, ``$XDG_CACHE_HOME/fedsim/compile/torch-<version>``, so that the
workers of a run, and every later run of the same step, share it, and a cleaned /tmp does
not cost a cold compile.  What inductor's cache cannot save is Dynamo's trace of the step in
each new process (~3 s of a 2NN worker's first round on 2 cores): so the step is compiled ahead
(``aot_compile``, torch's precompile) and saved whole (:func:`compile_step`), and a later process
loads it without tracing (:func:`load_step`; the 2NN's: ~2 s, most of it importing Dynamo and
inductor, against 13-18 s cold).  Where torch cannot precompile a step, it compiles as
``torch.compile`` does, at the first call, with inductor's cache.

A user's own ``TORCHINDUCTOR_CACHE_DIR`` wins.  The counters tell whether a compile came
from the cache: each worker's report says so (fedsim/sim/cohort_engine.py logs it).  Each
step compiled leaves a mark (:func:`mark`), by which fedsim/sim/engine_choice.py knows,
before any worker starts, that a run's step would come from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from fedsim.data.roots import cache_dir
from fedsim.scenario.sections import ClientConfig

ENV = "TORCHINDUCTOR_CACHE_DIR"

log = logging.getLogger(__name__)

STEP_SOURCES = ("cohort.py", "capture.py")  # this package's files whose code a compiled step holds
_steps = {"loaded": 0, "compiled": 0}  # whole steps found on disk and compiled ahead, in this process


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
        """Whole steps loaded and compiled ahead, with inductor's graph cache's own answers."""
        from torch._dynamo.utils import counters

        fx = counters["inductor"]
        return cls(fx["fxgraph_cache_hit"] + _steps["loaded"], fx["fxgraph_cache_miss"] + _steps["compiled"])

    def __sub__(self, before: Lookups) -> Lookups:
        return Lookups(self.hits - before.hits, self.misses - before.misses)


def step_key(model: nn.Module, cfg: ClientConfig) -> str:
    """What identifies a cohort step across processes: the model's layers and their code, the
    update's constants, and the code of the step itself (a changed ``forward`` or a new fedsim
    must not load a step compiled from the old one).  The algorithm's gradient terms are in the
    step's file name (:func:`terms_text`), not here: a mark (:func:`mark`) says that a step of this
    model and these settings compiled here, whatever its terms."""
    text = f"{torch.__version__}|{model}|{cfg}|{_code({type(m) for m in model.modules()})}"
    digest = hashlib.sha256(text.encode())
    for name in STEP_SOURCES:
        digest.update(Path(__file__).with_name(name).read_bytes())
    return digest.hexdigest()[:16]


def terms_text(terms: Iterable[tuple[object, ...]]) -> str:
    """The gradient terms a step holds, each as its kind and constants (clients/cohort.py:
    ``term_constants``, FedProx's ``(Proximal, mu)``): those and the kinds' code."""
    terms = list(terms)
    return f"{terms!r}|{_code({t[0] for t in terms if isinstance(t[0], type)})}"


def _code(classes: set[type]) -> str:
    """The source of every class given; a class without source (built at run time) makes the key
    this process's own."""
    digest = hashlib.sha256()
    for cls in sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            digest.update(f"{cls.__qualname__}@{id(cls)}@{os.getpid()}".encode())
    return digest.hexdigest()


def mark(key: str) -> None:
    """Note that the step ``key`` compiled here, so a later run's engine choice knows it is on disk."""
    with contextlib.suppress(OSError):  # a read-only cache costs a compile, never the run
        path = folder() / "fedsim-steps"
        path.mkdir(parents=True, exist_ok=True)
        (path / key).touch()


def marked(key: str) -> bool:
    """Whether the step ``key`` compiled before on this machine (:func:`mark`)."""
    return (folder() / "fedsim-steps" / key).exists()


def step_file(key: str, shape: str) -> Path:
    """Where the step ``key`` (:func:`step_key`) compiled for ``shape`` (its inputs, its device) is
    kept; one file per torch thread count too, which the compiled code is specialised to."""
    digest = hashlib.sha256(f"{key}|{shape}|{torch.get_num_threads()}".encode()).hexdigest()[:20]
    return folder() / "fedsim-compiled" / f"{digest}.bin"


def load_step(path: Path, model: nn.Module, args: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The step saved at ``path`` by :func:`compile_step`, ready to call with ``args``; None if
    there is none this torch can load, or its guards refuse ``args`` or this process's state
    (torch's thread count, grad mode...): then it is compiled again, and saved over."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as stream:
            step = torch.compiler.load_compiled_function(stream, external_data={"model": model})
        fits = bool(step.guard_check(*args))  # type: ignore[attr-defined]
    except Exception as error:  # another torch build's, or cut short: not worth failing a run for
        log.info(
            "compiled step %s not loaded (%s: %s); compiling it again", path, type(error).__name__, error
        )
        return None
    if not fits:
        log.info("compiled step %s was compiled for another state of torch; compiling it again", path)
        return None
    _steps["loaded"] += 1
    return step


def compile_step(
    step: Callable[..., None], args: tuple[Any, ...], path: Path, model: nn.Module
) -> Callable[..., Any]:
    """``step`` compiled for ``args`` (fixed shapes, one graph), saved at ``path`` where torch can.

    ``model`` is the module ``step`` closes over: saved by reference, given again at load.  If
    torch cannot compile ahead, the step compiles at its first call, as ``torch.compile``'s do.
    """
    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    ahead = getattr(compiled, "aot_compile", None)  # torch's precompile (2.9 on), still experimental
    if ahead is None:
        return compiled
    try:
        done = cast(Callable[..., Any], ahead((args, {})))
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # an op or a closure precompile cannot take: torch.compile may still
        log.info(
            "compiling the step ahead failed (%s: %s); compiling at its first call",
            type(error).__name__,
            error,
        )
        return compiled
    _steps["compiled"] += 1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # torch writes it whole and renames it
        done.save_compiled_function(str(path), external_data={"model": model})  # type: ignore[attr-defined]
    except Exception as error:  # a read-only cache, or an object in the step that cannot be saved
        log.info("compiled step not saved to %s (%s: %s)", path, type(error).__name__, error)
    return done
