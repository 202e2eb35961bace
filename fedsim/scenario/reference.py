"""The scenario reference, generated from the code so it cannot drift from it.

Every key a scenario may hold, with its type, bounds and default, is read from the
dataclasses of fedsim/scenario/sections.py and privacy.py; the keys of each built-in
plug-in's ``params`` table from its signature, through the same door a user's plug-in
goes (fedsim/scenario/signatures.py).  What a key *means* is prose, kept beside the docs
in docs/scenario_keys.toml; docs/hooks.py joins the two into docs/reference.md, and
tests/test_docs.py checks that every key has its words and no words outlive their key.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from fedsim.scenario import plugins, signatures
from fedsim.scenario.privacy import OWN_KEYS, PrivacyConfig
from fedsim.scenario.sections import ATTACK_PARAMS, AttackConfig, Scenario
from fedsim.scenario.tables import Bounds, Params

# Keys whose default depends on another key (attack.kind, privacy.mode): the defaults per choice.
CHOICE_DEFAULTS: dict[type, Mapping[str, Mapping[str, Any]]] = {
    AttackConfig: ATTACK_PARAMS,
    PrivacyConfig: OWN_KEYS,
}
SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
REQUIRED = object()  # a plug-in parameter without a default


@dataclass(frozen=True)
class Key:
    """One scenario key: its dotted name, type, bounds, default and the built-ins it belongs to."""

    name: str
    type: str
    default: str
    builtins: tuple[str, ...] = ()  # a params key: the built-in plug-ins that take it

    @property
    def table(self) -> str:
        """The TOML table the key is written in: "" for the top level, else e.g. "data.params"."""
        return self.name.rpartition(".")[0]


def all_keys() -> list[Key]:
    """Every key a scenario may hold, in the order of the dataclasses, params after their table."""
    return list(_fields(Scenario, ""))


def _fields(cls: type, prefix: str) -> Iterator[Key]:
    hints = get_type_hints(cls, include_extras=True)
    nested: list[tuple[type, str]] = []
    params: list[str] = []
    for f in dataclasses.fields(cls):
        name, hint = prefix + f.name, _optional(hints[f.name])[0]
        inner = get_args(hint)[0] if get_origin(hint) is tuple else hint
        if dataclasses.is_dataclass(inner) and isinstance(inner, type):
            kind = "array of tables" if inner is not hint else "table"
            yield Key(name, kind, "")
            nested.append((inner, name + "."))
            continue
        yield Key(name, type_name(hints[f.name]) + _bounds(f.metadata), _default(cls, f))
        if hint is Params:
            params.append(name)
    for name in params:  # a section's own keys first, then its sub-tables
        yield from _params(name)
    for inner, inner_prefix in nested:
        yield from _fields(inner, inner_prefix)


def _params(params_key: str) -> Iterator[Key]:
    """The keys of a ``params`` table that the built-in plug-ins of that kind take."""
    kind = next(k for k in plugins.KINDS if k.params_key == params_key)
    found: dict[str, list[tuple[str, inspect.Parameter, Any]]] = {}
    for builtin in plugins.REGISTRY[kind.name]:
        target = plugins.resolve(kind, builtin)
        _, own, hints = signatures.keywords(target, kind)
        for parameter in own:
            found.setdefault(parameter.name, []).append((builtin, parameter, hints.get(parameter.name)))
    for key, users in found.items():
        defaults = {builtin: REQUIRED if p.default is p.empty else p.default for builtin, p, _ in users}
        yield Key(f"{params_key}.{key}", type_name(users[0][2]), _join_defaults(defaults), tuple(defaults))


def _default(cls: type, f: dataclasses.Field[Any]) -> str:
    per_choice = {
        choice: own[f.name] for choice, own in CHOICE_DEFAULTS.get(cls, {}).items() if f.name in own
    }
    if per_choice:
        return _join_defaults(per_choice)
    if f.default is not dataclasses.MISSING:
        return "unset" if f.default is None else _literal(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "" if isinstance(value, Params) else _literal(value)
    return "required"


def _join_defaults(defaults: Mapping[str, Any]) -> str:
    """One default, or each choice's: ``4 (sign_flip), 10 (scale)``."""
    values = {choice: _literal(v) for choice, v in defaults.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{v} ({choice})" for choice, v in values.items())


def _literal(value: Any) -> str:
    """A value as it is written in TOML; None: worked out from the population (e.g. Krum's f)."""
    if value is None:
        return "from the population"
    if value is REQUIRED:
        return "required"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(_literal, value)) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(metadata: Mapping[str, Any]) -> str:
    limits = [f"{SYMBOLS[k]} {_literal(v)}" for k, v in metadata.items() if k in SYMBOLS]
    return f" ({', '.join(limits)})" if limits else ""


def _optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` as ``(X, True)``; anything else as ``(hint, False)``."""
    if get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint):
        rest = [a for a in get_args(hint) if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007
    return hint, False


def type_name(hint: Any) -> str:
    """A type annotation in words a TOML writer knows: integer, number, string, "a" or "b"..."""
    if hint is None or hint is Any:
        return "any"
    hint, optional = _optional(hint)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        bounds = [a for a in args[1:] if isinstance(a, Bounds)]
        text = type_name(args[0]) + (_bounds(bounds[0].limits()) if bounds else "")
    elif origin is Literal:
        text = " or ".join(_literal(a) for a in args)
    elif origin in (Union, types.UnionType):
        text = " or ".join(type_name(a) for a in args)
    elif origin is tuple:
        text = f"array of {type_name(args[0])}s"
    else:
        words = {int: "integer", float: "number", str: "string", bool: "boolean", Params: "table"}
        text = words.get(hint, getattr(hint, "__name__", str(hint)))
    return text + (", optional" if optional else "")


def markdown(meanings: Mapping[str, str], scenarios: Mapping[str, str]) -> str:
    """The reference page: a table per scenario table (``meanings``: key -> its words) and the
    shipped scenario files (``scenarios``: file name -> what it runs)."""
    lines = [
        "# Scenario reference",
        "",
        "Every key a scenario file may hold, generated from the scenario's dataclasses and the",
        "built-in plug-ins' signatures (`fedsim/scenario/reference.py`): types, bounds and defaults",
        "are the code's own. A key left out takes its default; `--set KEY=VALUE` overrides any key.",
    ]
    table = None
    for key in all_keys():
        if key.type == "table" and not key.name.endswith("params"):
            continue  # a section: its keys follow under their own heading
        if key.table != table:
            table = key.table
            heading = f"[{table}]" if table else "Top level"
            lines += [
                "",
                f"## {heading}",
                "",
                "| key | type | default | meaning |",
                "| --- | --- | --- | --- |",
            ]
        meaning = meanings.get(key.name, "")
        if key.builtins:  # a built-in plug-in's parameter: say whose
            whose = ", ".join(f"`{b}`" for b in key.builtins)
            meaning = f"{whose}: {meaning}" if meaning else whose
        cells = (f"`{key.name}`", key.type, key.default, meaning)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Shipped scenarios", "", "| file | what it runs |", "| --- | --- |"]
    lines += [f"| `scenarios/{name}` | {text} |" for name, text in sorted(scenarios.items())]
    return "\n".join(lines) + "\n"
