"""The three layer modules (common/layers_pt.py, layers_tf.py, layers_flax.py) are one vocabulary written three ways:
the same exported names in the same order, nothing public left out of ``__all__``, and the same parameter names
once each framework's idiom parameters are set aside. (Framework-only helpers live in common/backend_*.py.)"""

from __future__ import annotations

import importlib
import inspect

import pytest

FRAMEWORKS = ("pt", "tf", "flax")
# Parameters a framework's idiom adds or names its own way: training flags, random keys, dtypes, devices, Keras
# layer names.
IDIOM_PARAMETERS = {"training", "deterministic", "rng", "dropout_rng", "dtype", "param_dtype", "device", "name"}


@pytest.fixture(scope="module")
def modules():
    return {fw: importlib.import_module(f"rosettazoo.common.layers_{fw}") for fw in FRAMEWORKS}


def test_the_three_export_the_same_names_in_the_same_order(modules):
    exported = {fw: list(module.__all__) for fw, module in modules.items()}
    assert exported["tf"] == exported["pt"]
    assert exported["flax"] == exported["pt"]
    assert len(set(exported["pt"])) == len(exported["pt"]), "a name is exported twice"
    for fw, module in modules.items():
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"layers_{fw} exports names it does not define: {missing}"


def test_every_public_function_and_class_is_exported(modules):
    for fw, module in modules.items():
        defined_here = [
            name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__
        ]
        unexported = sorted(set(defined_here) - set(module.__all__))
        assert not unexported, (f"layers_{fw} defines public {unexported} outside __all__: export it in every "
                                f"framework, make it private, or move it to common/backend_{fw}.py")


def _parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name not in IDIOM_PARAMETERS]


def test_functions_take_the_same_parameters(modules):
    reference = modules["pt"]
    functions = [name for name in reference.__all__ if inspect.isfunction(getattr(reference, name))]
    assert functions, "no function exported"
    for name in functions:
        expected = _parameters(getattr(reference, name))
        for fw in FRAMEWORKS[1:]:
            function = getattr(modules[fw], name)
            assert inspect.isfunction(function), f"layers_{fw}.{name} is not a function as in layers_pt"
            assert _parameters(function) == expected, f"{name}: layers_{fw} and layers_pt differ in parameters"


def test_classes_are_classes_everywhere(modules):
    reference = modules["pt"]
    for name in reference.__all__:
        kinds = {fw: inspect.isclass(getattr(module, name)) for fw, module in modules.items()}
        assert len(set(kinds.values())) == 1, f"{name} is a class in some frameworks only: {kinds}"
