"""Python objects given to ``fedsim.run(model=...)``: named by their import path, found before
any module is imported (fedsim/scenario/plugins.py), and sent pickled to the simulation's
workers, which register them again (clients/app.py).
"""

from __future__ import annotations

import hashlib
import site
import sys
import types
from collections.abc import Iterable
from pathlib import Path

OBJECTS: dict[str, object] = {}  # import path -> an object given to the Python API


def object_name(obj: object) -> str:
    """The import path an object would have: ``module:qualified.name``."""
    module = getattr(obj, "__module__", None) or "__main__"
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def register_object(obj: object) -> str:
    """Make ``obj`` resolvable by its import path (even from a script or notebook); return the path."""
    name = object_name(obj)
    OBJECTS[name] = obj
    return name


def pickled(names: Iterable[str]) -> bytes | None:
    """The registered objects among ``names``, pickled for the simulation's workers; None if none.

    A function from a script, a notebook or a module the workers could not import (one
    outside the installed packages) travels by value, its code included.
    """
    chosen = {name: OBJECTS[name] for name in names if name in OBJECTS}
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
    """Register the objects :func:`pickled` pickled (once per process).  Only a simulation's
    worker may: on a real SuperNode, unpickling the server's bytes would run its code."""
    digest = hashlib.sha256(blob).hexdigest()
    if digest in _installed:
        return
    import cloudpickle

    objects: dict[str, object] = cloudpickle.loads(blob)
    OBJECTS.update(objects)
    _installed.add(digest)
