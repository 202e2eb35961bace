"""Turn TOML tables into frozen dataclasses, checking every key once.

The scenario dataclasses describe themselves: field types (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, nested dataclasses, ``X | None``, ``tuple[X, ...]``
for TOML arrays) and bounds
given with :func:`bounded`.  This module walks them generically, so adding a key
to a scenario section is a one-line change and its checks come for free.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import operator
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ScenarioError(ValueError):
    """A bad scenario value: ``str(error)`` is one line that names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(one_line(f"{key}: {problem}" if key else problem))
        self.key = key


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 round", "3 rounds"."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped, as ``repr`` shows them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Numeric bounds of a value; in a plug-in's signature, ``Annotated[float, Bounds(gt=0)]``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Params(Mapping[str, Any]):
    """A plug-in's keyword arguments (``[model.params]``, ...): a read-only TOML table.

    Hashable, as the frozen dataclasses that hold it are; equal to a dict of the same items.
    Checked against the plug-in's signature once the plug-in is loaded (fedsim/scenario/plugins.py).
    """

    def __init__(self, table: Mapping[str, Any] | None = None) -> None:
        self._table = copy.deepcopy(dict(table or {}))

    def __getitem__(self, key: str) -> Any:
        return self._table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __hash__(self) -> int:
        return hash(json.dumps(self._table, sort_keys=True, default=repr))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._table) == dict(other)

    def __repr__(self) -> str:
        return repr(self._table)


def describe(error: BaseException) -> str:
    """One line for an unexpected error: an OSError as ``path: reason`` (the path it failed
    on: a full disk, a folder one may not write), anything else as ``Type: message``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return one_line(f"{error.filename}: {error.strerror}")
    return one_line(f"{type(error).__name__}: {error}")


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with numeric bounds checked by :func:`from_table`."""
    return dataclasses.field(default=default, metadata=Bounds(ge, gt, le, lt).limits())


def fill_choice_defaults(
    obj: Any,
    section: str,
    choice: str,
    keys: Sequence[str],
    owners: Mapping[str, Mapping[str, Any]],
    noun: str,
) -> None:
    """For a frozen config whose optional ``keys`` belong to some of its choices (``owners``:
    choice -> its keys and their defaults): give the chosen one's unset keys their defaults, and
    refuse a key set that the choice does not use, naming the choices that do."""
    own = owners[choice]
    for key in keys:
        if key in own and getattr(obj, key) is None:
            object.__setattr__(obj, key, own[key])  # frozen: set once, while building
        elif key not in own and getattr(obj, key) is not None:
            users = [c for c, theirs in owners.items() if key in theirs]
            raise ScenarioError(
                f"{section}.{key}", f"only used by {noun}{' or '.join(map(repr, users))}, not {choice!r}"
            )


def from_table(cls: type[T], table: Mapping[str, Any], path: str = "") -> T:
    """Build ``cls`` from a parsed TOML table; raise ScenarioError on the first bad key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    moved: Mapping[str, str] = getattr(cls, "MOVED", {})  # old key -> where it lives now
    for key in table:
        if key in moved and key not in fields:
            where = moved[key] if " " in moved[key] else _join(path, moved[key])  # a key, or what to write
            raise ScenarioError(_join(path, key), f"moved: write it as {where}")
        if key not in fields:
            raise ScenarioError(_join(path, key), f"unknown key{suggest(key, fields)}")
    hints = get_type_hints(cls)
    values = {}
    for name, value in table.items():
        key = _join(path, name)
        values[name] = check_bounds(key, fields[name].metadata, convert(key, hints[name], value))
    try:
        return cls(**values)
    except TypeError as error:  # a required field without a default is missing
        missing = [n for n, f in fields.items() if n not in values and _required(f)]
        raise ScenarioError(_join(path, missing[0]) if missing else path, "missing") from error


def to_table(obj: Any) -> dict[str, Any]:
    """The inverse of :func:`from_table`, leaving out unset optional values (TOML has no null)."""
    table: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            table[f.name] = to_table(value)
        elif isinstance(value, tuple):  # an array, of tables or of values
            table[f.name] = [to_table(v) if dataclasses.is_dataclass(v) else v for v in value]
        elif isinstance(value, Params):  # a plug-in's params: written only when it has any
            if value:
                table[f.name] = copy.deepcopy(dict(value))
        elif value is not None:
            table[f.name] = value
    return table


def apply_override(table: dict[str, Any], assignment: str) -> None:
    """Apply ``key.path=value`` to a raw table; the value is read as TOML, else as a string."""
    path, sep, raw = assignment.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ScenarioError("--set", f"expected KEY=VALUE, got {assignment!r}")
    *parents, leaf = path.split(".")
    node = table
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ScenarioError(".".join(parents[: depth + 1]), "is a value, not a table")
    node[leaf] = parse_value(raw.strip())


def parse_value(raw: str) -> Any:
    """``0.05`` -> float, ``true`` -> bool, ``fedprox`` -> str: typed like the file."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def convert(key: str, hint: Any, value: Any) -> Any:
    """``value`` (from TOML) as type ``hint``; a ScenarioError naming ``key`` if it is not one."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Params:  # a plug-in's params table: any TOML table, checked later by the plug-in
        if not isinstance(value, Mapping):
            raise ScenarioError(key, f"expected a table, got {_shorten(value)}")
        return Params(value)
    if origin in (Union, types.UnionType):  # ``X | None``: TOML cannot say None, so X it is
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(key, options[0], value)
        for option in options:  # e.g. ``float | Literal["auto"]``: the first that fits
            try:
                return convert(key, option, value)
            except ScenarioError:
                continue
        raise ScenarioError(key, f"expected {' or '.join(map(_type_name, options))}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ScenarioError(key, f"expected one of {_names(args)}, got {_shorten(value)}")
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # ``tuple[X, ...]``
        if not isinstance(value, list):
            raise ScenarioError(key, f"expected an array, got {_shorten(value)}")
        return tuple(convert(f"{key}[{i}]", args[0], v) for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ScenarioError(key, f"expected a table, got {_shorten(value)}")
        return from_table(hint, value, key)  # type: ignore[arg-type]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(key, value)
    if hint is str and type(value) is str and "\x00" in value:  # no path or name can hold one
        raise ScenarioError(key, f"expected text without NUL characters, got {_shorten(value)}")
    if hint in (int, bool, str) and type(value) is hint:
        return value
    raise ScenarioError(key, f"expected {_type_name(hint)}, got {_shorten(value)}")


def _finite(key: str, value: int | float) -> float:
    """A float, refusing inf and nan (TOML allows both) and integers past float's range."""
    try:
        number = float(value)
    except OverflowError:
        raise ScenarioError(key, f"expected a number, got an integer of {len(str(value))} digits") from None
    if not math.isfinite(number):
        raise ScenarioError(key, f"expected a finite number, got {value!r}")
    return number


def _shorten(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to one readable piece of a line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


_CHECKS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "ge": (">=", operator.ge),
    "gt": (">", operator.gt),
    "le": ("<=", operator.le),
    "lt": ("<", operator.lt),
}


def check_bounds(key: str, limits: Mapping[str, float], value: Any) -> Any:
    """``value``, if it is within ``limits`` (``{"ge": 0, ...}``, as :class:`Bounds` gives)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # a word such as "auto" beside a number: the bounds are the number's
    for name, limit in limits.items():
        sign, ok = _CHECKS[name]
        if not ok(value, limit):
            raise ScenarioError(key, f"expected a value {sign} {limit}, got {_shorten(value)}")
    return value


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def suggest(key: str, known: Mapping[str, Any] | Sequence[str]) -> str:
    """`` (did you mean ...? expected one of ...)`` for an unknown ``key``."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}expected one of {_names(known)})"


def _names(options: Any) -> str:
    return ", ".join(repr(o) for o in options)


def _type_name(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in get_args(hint))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))
