"""The one door for plug-ins: models, data sets, strategies and local updates.

A scenario names each by a built-in name (``cnn``, ``mnist``, ``fedavg``, ``sgd``) or by
an import path ``package.module:attribute``.  Both come through here: the built-ins
are import paths themselves, listed in :data:`REGISTRY`, so they load exactly as a
user's code does.  A Python object handed to ``fedsim.run(model=...)`` is registered
under its own import path (:func:`register_object`) and found first.

Every plug-in takes its keyword arguments from the ``params`` table beside its name,
checked against its signature (:func:`bind`): unknown and missing keys, the types its
annotations name (int, float, bool, str, Literal, X | None, tuple[X, ...]) and bounds
given as ``Annotated[float, Bounds(gt=0)]``.  The defaults of the parameters left out
fill the table, so the run folder's scenario.toml records every value a run used.

Free of torch and Flower: the command line checks names before either loads.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import site
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from fedsim.config import Bounds, ScenarioError, check_bounds, convert, suggest


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
        "cnn": "fedsim.models:cnn",
        "mlp": "fedsim.models:mlp",
        "logreg": "fedsim.models:logreg",
        "lstm": "fedsim.models:lstm",
        "gru": "fedsim.models:gru",
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
        name: f"strategies.builtin:{name}"
        for name in (
            "fedavg",
            "fedprox",
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
            "scaffold",
        )
    },
    "update": {"sgd": "clients.update:sgd"},
}

_objects: dict[str, object] = {}  # import path -> an object given to the Python API


def is_builtin(kind: Kind, name: str) -> bool:
    return name in REGISTRY[kind.name]


def object_name(obj: object) -> str:
    """The import path an object would have: ``module:qualified.name``."""
    module = getattr(obj, "__module__", None) or "__main__"
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def register_object(obj: object) -> str:
    """Make ``obj`` resolvable by its import path (even from a script or notebook); return the path."""
    name = object_name(obj)
    _objects[name] = obj
    return name


def registered_objects() -> dict[str, object]:
    return dict(_objects)


def shipped(names: Iterable[str]) -> bytes | None:
    """The registered objects among ``names``, pickled for the simulation's workers; None if none.

    A function from a script, a notebook or a module the workers could not import (one
    outside the installed packages) travels by value, its code included.
    """
    chosen = {name: _objects[name] for name in names if name in _objects}
    if not chosen:
        return None
    import cloudpickle

    local = {m for m in (sys.modules.get(getattr(o, "__module__", "")) for o in chosen.values()) if _local(m)}
    for module in local:
        cloudpickle.register_pickle_by_value(module)
    try:
        blob: bytes = cloudpickle.dumps(chosen)
    finally:
        for module in local:
            cloudpickle.unregister_pickle_by_value(module)
    return blob


def _local(module: types.ModuleType | None) -> bool:
    """A module of the user's own files: not installed, not fedsim's (``__main__`` goes by value anyway)."""
    if module is None or module.__name__ == "__main__" or module.__name__.split(".")[0] in OURS:
        return False
    origin = getattr(module, "__file__", None)
    installed = {sys.prefix, sys.base_prefix, *site.getsitepackages()}
    return origin is not None and not any(str(Path(origin).resolve()).startswith(p) for p in installed)


OURS = frozenset({"fedsim", "clients", "strategies"})
_installed: set[str] = set()


def install(blob: bytes) -> None:
    """Register the objects :func:`shipped` pickled (once per process).  Only a simulation's
    worker may: on a real SuperNode, unpickling the server's bytes would run its code."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest in _installed:
        return
    import cloudpickle

    objects: dict[str, object] = cloudpickle.loads(blob)
    _objects.update(objects)
    _installed.add(digest)


def search(paths: Sequence[str]) -> None:
    """Let plug-in modules be imported from ``paths`` (a scenario's ``python_path``), first."""
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


def check_name(kind: Kind, name: str) -> None:
    """A plug-in name as a scenario may hold it: a built-in, or what may be an import path
    (imported once the run is set up, fedsim/preflight.py)."""
    if not name.strip() or not name.isprintable():
        raise PluginError(kind.key, f"expected a name or package.module:attribute, got {name!r}")
    if ":" not in name and not is_builtin(kind, name) and name not in _objects:
        resolve(kind, name)  # raises: an unknown built-in, with a suggestion


def resolve(kind: Kind, name: str, paths: Sequence[str] = ()) -> Any:
    """The object ``name`` stands for: a registered object, a built-in or an import path."""
    if name in _objects:
        return _objects[name]
    builtin = REGISTRY[kind.name].get(name)
    if builtin is None and ":" not in name:
        raise PluginError(
            kind.key,
            f"unknown {kind.name} {name!r}{suggest(name, REGISTRY[kind.name])[:-1]}, "
            "or an import path package.module:attribute)",
        )
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
    return found


def _failed(kind: Kind, name: str, doing: str, error: BaseException) -> PluginError:
    return PluginError(kind.key, f"{name!r}: {doing} failed: {type(error).__name__}: {error}")


def bind(kind: Kind, name: str, target: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked against ``target``'s signature, with its defaults filled in.

    A key must name a keyword parameter: of the function, or of the class's ``__init__``
    and, while that passes ``**kwargs`` on, of its base classes' (a FedAvg subclass's params
    include FedAvg's).
    """
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # no signature to read (a C function): the call will tell
        return dict(params)
    try:
        signature.bind_partial(*(None for _ in kind.positional))
    except TypeError:
        raise PluginError(kind.key, f"{name!r} cannot be called as {kind.call_form(name)}") from None
    named, own, hints = _keywords(target, signature, kind)
    bound: dict[str, Any] = {}
    for key, value in params.items():
        where = f"{kind.params_key}.{key}"
        if key in kind.given:
            raise PluginError(where, f"set by fedsim, not by {kind.params_key}")
        if key not in named:
            takes = suggest(key, list(named)) if named else f" ({name!r} takes no params)"
            raise PluginError(where, f"unknown key{takes}")
        bound[key] = typed(where, hints.get(key), value)
    for parameter in own:  # a base class's defaults are its own business: not recorded
        if parameter.name in bound:
            continue
        if parameter.default is parameter.empty:
            raise PluginError(f"{kind.params_key}.{parameter.name}", f"missing: {name!r} needs it")
        if is_toml(parameter.default):  # recorded in the run folder's scenario.toml
            bound[parameter.name] = parameter.default
    return bound


def _keywords(
    target: Any, signature: inspect.Signature, kind: Kind
) -> tuple[dict[str, inspect.Parameter], list[inspect.Parameter], dict[str, Any]]:
    """The keyword parameters a params table may set, the plug-in's own among them, their annotations."""
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    chain: list[tuple[list[inspect.Parameter], Any]] = [
        (list(signature.parameters.values())[len(kind.positional) :], target)
    ]
    if isinstance(target, type):  # walk up while an __init__ hands **kwargs to its base
        chain = []
        for cls in target.__mro__:
            init = cls.__dict__.get("__init__")
            if init is None or cls is object:
                continue
            parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
            chain.append((parameters[0 if chain else len(kind.positional) :], init))
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break
    named: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for parameters, function in chain:
        for p in parameters:
            if p.kind in keyword and p.name not in kind.given and p.name not in named:
                named[p.name] = p
        hints = {**_hints(function), **hints}
    first = {p.name for p in chain[0][0]} if chain else set()
    return named, [p for name, p in named.items() if name in first], hints


def _hints(function: Any) -> dict[str, Any]:
    try:
        return get_type_hints(function, include_extras=True)
    except Exception:  # an annotation that cannot be evaluated: leave those values unchecked
        return {}


def typed(key: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the annotation ``hint`` where fedsim can check it; else as given."""
    if hint is None:
        return value
    limits: dict[str, float] = {}
    if get_origin(hint) is Annotated:
        hint, *extras = get_args(hint)
        for extra in extras:
            if isinstance(extra, Bounds):
                limits.update(extra.limits())
    if not _checkable(hint):
        return value
    return check_bounds(key, limits, convert(key, hint, value))


def _checkable(hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if hint in (int, float, bool, str) or origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(a is type(None) or _checkable(a) for a in args)
    if origin is tuple:
        return len(args) == 2 and args[1] is Ellipsis and _checkable(args[0])
    return False


def is_toml(value: Any) -> bool:
    """Whether TOML can hold ``value`` (it has no null)."""
    if isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, tuple | list):
        return all(is_toml(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_toml(v) for k, v in value.items())
    return False


def call(kind: Kind, name: str, target: Any, *args: Any, **kwargs: Any) -> Any:
    """``target(*args, **kwargs)`` while setting up a run: what it raises names the key and plug-in."""
    try:
        return target(*args, **kwargs)
    except ScenarioError:
        raise
    except Exception as error:
        raise _failed(kind, name, "calling it", error) from error


# Keywords a plug-in gets only by naming them: passing them on through ``**kwargs`` would
# reach a base class that has no such parameter (a FedAvg subclass's ``super().__init__``).
BY_NAME_ONLY = frozenset({"context", "seed"})


def given(target: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """Of fedsim's own keywords ``values``, those ``target`` takes (by name, or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return {}
    names = {p.name for p in parameters}
    open_keywords = any(p.kind is p.VAR_KEYWORD for p in parameters)
    return {k: v for k, v in values.items() if k in names or (open_keywords and k not in BY_NAME_ONLY)}
