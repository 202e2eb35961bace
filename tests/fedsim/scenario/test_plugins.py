"""The plug-in door: names resolve to built-ins, import paths or registered objects; params are
checked against signatures; every failure is one line naming the key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from flwr.serverapp.strategy import FedAvg

from fedsim.models.builtin import cnn
from fedsim.scenario import objects, plugins, signatures
from fedsim.scenario.tables import Bounds, ScenarioError

MODULE = """
from typing import Annotated
from torch import nn
from fedsim.scenario.tables import Bounds

def wide(input_shape, num_classes, *, width: Annotated[int, Bounds(ge=1)] = 2, act: str = "relu"):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * width, num_classes))

def needs(input_shape, num_classes, *, depth: int):
    return nn.Linear(1, 1)

def no_args():
    return None

NOT_CALLABLE = 3
"""


@pytest.fixture
def module(tmp_path: Path) -> str:
    name = f"plugmod_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    return name


def error(call: Any, *args: Any) -> str:
    with pytest.raises(ScenarioError) as caught:
        call(*args)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_built_in_name_is_its_import_path() -> None:
    assert plugins.resolve(plugins.MODEL, "cnn") is cnn
    assert plugins.resolve(plugins.MODEL, "fedsim.models.builtin:cnn") is cnn


def test_an_import_path_is_found_in_the_given_folders(tmp_path: Path, module: str) -> None:
    target = plugins.resolve(plugins.MODEL, f"{module}:wide", [str(tmp_path)])
    assert target.__name__ == "wide" and str(tmp_path) in sys.path


def test_missing_module_attribute_and_bad_paths_are_named(tmp_path: Path, module: str) -> None:
    paths = [str(tmp_path)]
    assert error(plugins.resolve, plugins.MODEL, "nosuchmod_xyz:f", paths) == (
        "model.name: 'nosuchmod_xyz:f': no module named 'nosuchmod_xyz' "
        f"(searched {tmp_path}, the Python path)"
    )
    assert error(plugins.resolve, plugins.MODEL, f"{module}:wid", paths).startswith(
        f"model.name: '{module}:wid': {module} has no attribute 'wid' (did you mean 'wide'?"
    )
    assert "is a int, not a function or class" in error(
        plugins.resolve, plugins.MODEL, f"{module}:NOT_CALLABLE", paths
    )
    assert "expected package.module:attribute, got 'mod:'" in error(plugins.resolve, plugins.MODEL, "mod:")
    assert "pass the object itself to fedsim.run(strategy=...)" in error(
        plugins.resolve, plugins.STRATEGY, "__main__:Mine"
    )
    assert error(plugins.resolve, plugins.DATASET, "mnst").startswith(
        "data.dataset: unknown dataset 'mnst' (did you mean 'mnist'?"
    )


def test_a_module_that_fails_to_import_says_why_and_keeps_its_error(tmp_path: Path) -> None:
    (tmp_path / "brokenmod_q.py").write_text("import nosuchdependency_q\n")
    with pytest.raises(plugins.PluginError) as caught:
        plugins.resolve(plugins.MODEL, "brokenmod_q:f", [str(tmp_path)])
    assert str(caught.value) == (
        "model.name: 'brokenmod_q:f': importing brokenmod_q failed: "
        "ModuleNotFoundError: No module named 'nosuchdependency_q'"
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)  # for --debug


def test_params_are_typed_bounded_and_filled_with_defaults(tmp_path: Path, module: str) -> None:
    target = plugins.resolve(plugins.MODEL, f"{module}:wide", [str(tmp_path)])
    name = f"{module}:wide"
    assert signatures.bind(plugins.MODEL, name, target, {}) == {"width": 2, "act": "relu"}
    assert signatures.bind(plugins.MODEL, name, target, {"width": 5}) == {"width": 5, "act": "relu"}
    assert error(signatures.bind, plugins.MODEL, name, target, {"width": 0}) == (
        "model.params.width: expected a value >= 1, got 0"
    )
    assert error(signatures.bind, plugins.MODEL, name, target, {"width": "x"}) == (
        "model.params.width: expected an integer, got 'x'"
    )
    assert error(signatures.bind, plugins.MODEL, name, target, {"widht": 3}).startswith(
        "model.params.widht: unknown key (did you mean 'width'?"
    )


def test_a_required_param_and_the_calling_convention_are_checked(tmp_path: Path, module: str) -> None:
    needs = plugins.resolve(plugins.MODEL, f"{module}:needs", [str(tmp_path)])
    assert error(signatures.bind, plugins.MODEL, "m:needs", needs, {}) == (
        "model.params.depth: missing: 'm:needs' needs it"
    )
    no_args = plugins.resolve(plugins.MODEL, f"{module}:no_args", [str(tmp_path)])
    assert error(signatures.bind, plugins.MODEL, "m:no_args", no_args, {}) == (
        "model.name: 'm:no_args' cannot be called as m:no_args(input_shape, num_classes, **params)"
    )


class Nova(FedAvg):
    """A FedAvg subclass whose own params sit beside FedAvg's."""

    def __init__(self, *, mu: Annotated[float, Bounds(ge=0)] = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mu = mu


def test_a_strategy_class_takes_its_own_and_its_bases_params_but_not_fedsims() -> None:
    bound = signatures.bind(plugins.STRATEGY, "x:Nova", Nova, {"weighted_by_key": "n"})
    assert bound["mu"] == 0.5 and bound["weighted_by_key"] == "n"
    assert "fraction_train" not in bound  # fedsim sets it: sampling is fedsim's
    assert error(signatures.bind, plugins.STRATEGY, "x:Nova", Nova, {"fraction_train": 0.5}) == (
        "strategy.params.fraction_train: set by fedsim, not by strategy.params"
    )
    given = signatures.given(Nova, {"fraction_train": 1.0, "context": object()})
    assert set(given) == {"fraction_train"}  # context only by name: FedAvg would refuse it


def test_a_registered_object_is_found_by_its_name_first() -> None:
    def local_model(input_shape: tuple[int, ...], num_classes: int) -> None:
        return None

    name = objects.register_object(local_model)
    assert name == f"{__name__}:test_a_registered_object_is_found_by_its_name_first.<locals>.local_model"
    assert plugins.resolve(plugins.MODEL, name) is local_model
    plugins.check_name(plugins.MODEL, name)  # a registered name needs no import


def test_calls_while_setting_up_name_the_key_and_plug_in() -> None:
    def broken() -> None:
        raise ValueError("bad width")

    with pytest.raises(plugins.PluginError) as caught:
        plugins.call(plugins.MODEL, "m:f", broken)
    assert str(caught.value) == "model.name: 'm:f': calling it failed: ValueError: bad width"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (plugins.DATASET, "os:system"),  # `fedsim validate` ran os.system(<data root>)
        (plugins.MODEL, "subprocess:run"),
        (plugins.STRATEGY, "collections:OrderedDict"),
        (plugins.UPDATE, "builtins:exec"),
    ],
)
def test_a_callable_of_pythons_standard_library_is_refused_before_it_is_called(
    kind: plugins.Kind, name: str
) -> None:
    with pytest.raises(ScenarioError, match=f"{kind.key}: '{name}' is in Python's standard library"):
        plugins.resolve(kind, name)


def test_a_users_module_passing_on_a_standard_library_function_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "passes_on.py").write_text("from os import system as load\n")
    with pytest.raises(ScenarioError, match="standard library"):
        plugins.resolve(plugins.DATASET, "passes_on:load", [str(tmp_path)])


def test_a_node_allowing_only_some_modules_imports_those_and_the_built_ins(
    tmp_path: Path, module: str
) -> None:
    with plugins.allowing_only(["elsewhere", f"{module}_not"]):
        assert plugins.resolve(plugins.MODEL, "cnn") is cnn  # the built-ins always
        assert plugins.resolve(plugins.MODEL, "fedsim.models.builtin:cnn") is cnn
        with pytest.raises(ScenarioError) as refused:
            plugins.resolve(plugins.MODEL, f"{module}:wide", [str(tmp_path)])
    assert str(refused.value) == (
        f"model.name: '{module}:wide': this node imports only the built-ins and the plug-ins its "
        f"operator allowed (--allow-plugin: elsewhere, {module}_not); "
        f"`fedsim client --allow-plugin {module}` would allow it"
    )
    assert module not in sys.modules  # refused before its code ran
    with plugins.allowing_only([module]):
        assert plugins.resolve(plugins.MODEL, f"{module}:wide", [str(tmp_path)]).__name__ == "wide"
    assert plugins.resolve(plugins.MODEL, f"{module}:wide", [str(tmp_path)])  # after the block: anything
