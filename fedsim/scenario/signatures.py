"""A plug-in's params checked against its signature: unknown and missing keys, the types its
annotations name (int, float, bool, str, Literal, X | None, tuple[X, ...]) and bounds given as
``Annotated[float, Bounds(gt=0)]``.  The defaults of the parameters left out fill the table,
so the run folder's scenario.toml records every value a run used.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from fedsim.scenario.plugins import Kind, PluginError
from fedsim.scenario.tables import Bounds, check_bounds, convert, suggest


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
    named, own, hints = keywords(target, kind)
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


def keywords(
    target: Any, kind: Kind
) -> tuple[dict[str, inspect.Parameter], list[inspect.Parameter], dict[str, Any]]:
    """The keyword parameters a params table may set, the plug-in's own among them, their annotations."""
    signature = inspect.signature(target)
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
