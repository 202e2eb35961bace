"""The one door for plug-ins: models, data sets, strategies and local updates.

A scenario names each by a built-in name (``cnn``, ``mnist``, ``fedavg``, ``sgd``) or by
an import path ``package.module:attribute``.  Both come through here: the built-ins
are import paths themselves, listed in :data:`REGISTRY`, so they load exactly as a
user's code does.  A Python object handed to ``fedsim.run(model=...)`` is registered
under its own import path (:func:`register_object`) and found first.

Every plug-in takes its keyword arguments from the ``params`` table beside its name,
checked against its signature (fedsim/scenario/signatures.py).  Python objects given to
the API are kept, and sent to the simulation's workers, by fedsim/scenario/objects.py.

Free of torch and Flower: the command line checks names before either loads.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fedsim.scenario import objects
from fedsim.scenario.tables import ScenarioError, suggest


class PluginError(ScenarioError):
    """A plug-in that cannot be imported, called or used: one line naming the key and the name.

    ``__cause__`` holds the plug-in's own exception, for ``--debug``.
    """


@dataclass(frozen=True)
class Kind:
    """One kind of plug-in: where the scenario names it and how fedsim calls it."""

    name: str
    key: str  # the scenario key holding the name
    params_key: str  # the table of its keyword arguments
    positional: tuple[str, ...]  # what fedsim passes first, in order
    given: frozenset[str] = frozenset()  # keywords fedsim passes itself where the plug-in takes them
    returns: str = ""  # what a call must give, for the error messages

    def call_form(self, name: str) -> str:
        return f"{name}({', '.join((*self.positional, '**params'))})"


# Flower's strategies sample by themselves; fedsim's seeded sampling shows each exactly the
# nodes to use, so it builds them with these (strategies/builtin.py passes the values).
FLOWER_SAMPLING = frozenset(
    {"fraction_train", "fraction_evaluate", "min_train_nodes", "min_evaluate_nodes", "min_available_nodes"}
)

MODEL = Kind(
    "model", "model.name", "model.params", ("input_shape", "num_classes"), returns="a torch.nn.Module"
)
DATASET = Kind("dataset", "data.dataset", "data.params", ("root",), frozenset({"seed"}), "a fedsim.Dataset")
STRATEGY = Kind(
    "strategy",
    "strategy.name",
    "strategy.params",
    (),
    frozenset({"context", *FLOWER_SAMPLING}),
    "a flwr.serverapp.strategy.Strategy",
)
UPDATE = Kind(
    "update", "client.update", "client.params", ("model", "data", "ctx"), returns="a dict of metrics"
)
KINDS = (MODEL, DATASET, STRATEGY, UPDATE)

# The built-ins, by name: import paths, loaded through the same door as a user's.
REGISTRY: dict[str, dict[str, str]] = {
    "model": {
        "cnn": "fedsim.models.builtin:cnn",
        "mlp": "fedsim.models.builtin:mlp",
        "logreg": "fedsim.models.builtin:logreg",
        "lstm": "fedsim.models.builtin:lstm",
        "gru": "fedsim.models.builtin:gru",
    },
    "dataset": {
        "mnist": "fedsim.data.mnist:load",
        "fashion_mnist": "fedsim.data.fashion_mnist:load",
        "emnist": "fedsim.data.emnist:load",
        "cifar10": "fedsim.data.cifar10:load",
        "femnist": "fedsim.data.femnist:load",
        "synthetic": "fedsim.data.synthetic:load",
        "shakespeare": "fedsim.data.shakespeare:load",
        "text": "fedsim.data.text:load",
    },
    "strategy": {
        # The algorithms with a client half, one file each (strategies/algorithm.py)...
        "fedavg": "strategies.fedavg:fedavg",
        "fedprox": "strategies.fedprox:fedprox",
        "scaffold": "strategies.scaffold:Scaffold",
        "fednova": "strategies.fednova:FedNova",
        "feddyn": "strategies.feddyn:FedDyn",
        "moon": "strategies.moon:Moon",
        "fine_tune": "strategies.fine_tune:fine_tune",
        "ditto": "strategies.ditto:ditto",
        # Asynchronous ones (strategies/asynchronous.py), one file each.
        "fedbuff": "strategies.fedbuff:FedBuff",
        "fedasync": "strategies.fedasync:FedAsync",
        # ... and Flower's server-side strategies (strategies/builtin.py).
        **{
            name: f"strategies.builtin:{name}"
            for name in (
                "fedavgm",
                "fedadam",
                "fedyogi",
                "fedadagrad",
                "qfedavg",
                "fedmedian",
                "fedtrimmedavg",
                "krum",
                "multikrum",
                "bulyan",
            )
        },
    },
    "update": {"sgd": "clients.update:sgd"},
}


def is_builtin(kind: Kind, name: str) -> bool:
    return name in REGISTRY[kind.name]


# A SuperNode receives the scenario from the server and would import whatever it names: there,
# only the built-ins and the module prefixes its operator allowed (`fedsim client
# --allow-plugin`, clients/app.py).  None: any import path (a simulation, the user's own files).
_allowed: list[tuple[str, ...] | None] = [None]


@contextlib.contextmanager
def allowing_only(prefixes: Sequence[str] | None) -> Iterator[None]:
    """Import only the built-ins and modules under ``prefixes`` while the block runs (None: anything)."""
    before = _allowed[0]
    _allowed[0] = None if prefixes is None else tuple(prefixes)
    try:
        yield
    finally:
        _allowed[0] = before


def _check_allowed(kind: Kind, path: str) -> None:
    prefixes = _allowed[0]
    if prefixes is None or path in REGISTRY[kind.name].values():
        return
    module = path.partition(":")[0]
    if not any(module == p or module.startswith(p + ".") for p in prefixes):
        allowed = ", ".join(prefixes) or "none"
        raise PluginError(
            kind.key,
            f"{path!r}: this node imports only the built-ins and the plug-ins its operator allowed "
            f"(--allow-plugin: {allowed}); `fedsim client --allow-plugin {module}` would allow it",
        )


def search(paths: Sequence[str]) -> None:
    """Let plug-in modules be imported from ``paths`` (a scenario's ``python_path``), first."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


def check_name(kind: Kind, name: str) -> None:
    """A plug-in name as a scenario may hold it: a built-in, or what may be an import path
    (imported once the run is set up, fedsim/sim/preflight.py)."""
    if not name.strip() or not name.isprintable():
        raise PluginError(kind.key, f"expected a name or package.module:attribute, got {name!r}")
    if ":" not in name and not is_builtin(kind, name) and name not in objects.OBJECTS:
        resolve(kind, name)  # raises: an unknown built-in, with a suggestion


def resolve(kind: Kind, name: str, paths: Sequence[str] = ()) -> Any:
    """The object ``name`` stands for: a registered object, a built-in or an import path."""
    if name in objects.OBJECTS:
        return objects.OBJECTS[name]
    builtin = REGISTRY[kind.name].get(name)
    if builtin is None and ":" not in name:
        raise PluginError(
            kind.key,
            f"unknown {kind.name} {name!r}{suggest(name, REGISTRY[kind.name])[:-1]}, "
            "or an import path package.module:attribute)",
        )
    _check_allowed(kind, builtin or name)
    search(paths)
    return _import(kind, builtin or name, paths)


def _import(kind: Kind, path: str, paths: Sequence[str]) -> Any:
    module_name, _, attribute = path.partition(":")
    if (
        not module_name
        or not attribute
        or not all(p.isidentifier() for p in path.replace(":", ".").split("."))
    ):
        raise PluginError(kind.key, f"expected package.module:attribute, got {path!r}")
    if module_name == "__main__":
        raise PluginError(
            kind.key,
            f"{path!r} lives in a script or notebook: pass the object itself to fedsim.run({kind.name}=...)",
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            where = ", ".join([*paths, "the Python path"])
            raise PluginError(
                kind.key, f"{path!r}: no module named {error.name!r} (searched {where})"
            ) from error
        raise _failed(kind, path, f"importing {module_name}", error) from error
    except Exception as error:
        raise _failed(kind, path, f"importing {module_name}", error) from error
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            known = [n for n in dir(found) if not n.startswith("_")]
            hint = suggest(part, known) if len(known) < 40 else ""
            raise PluginError(kind.key, f"{path!r}: {module_name} has no attribute {part!r}{hint}")
        found = getattr(found, part)
    if not callable(found):
        raise PluginError(kind.key, f"{path!r} is a {type(found).__name__}, not a function or class")
    defined_in = str(getattr(found, "__module__", None) or module_name)
    if {module_name.split(".")[0], defined_in.split(".")[0]} & sys.stdlib_module_names:
        raise PluginError(  # `os:system` as a data set would run a shell command with the data root
            kind.key, f"{path!r} is in Python's standard library: not a {kind.name} plug-in"
        )
    return found


def _failed(kind: Kind, name: str, doing: str, error: BaseException) -> PluginError:
    return PluginError(kind.key, f"{name!r}: {doing} failed: {type(error).__name__}: {error}")


def call(kind: Kind, name: str, target: Any, *args: Any, **kwargs: Any) -> Any:
    """``target(*args, **kwargs)`` while setting up a run: what it raises names the key and plug-in."""
    try:
        return target(*args, **kwargs)
    except ScenarioError:
        raise
    except Exception as error:
        raise _failed(kind, name, "calling it", error) from error
