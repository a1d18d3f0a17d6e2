"""Lazy family packages: a name resolves to its module on first access, so importing a family imports no framework."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

# The extra that installs each framework's top-level module.
_EXTRA_OF_MODULE = {
    "torch": "torch",
    "tensorflow": "tf", "keras": "tf",
    "jax": "flax", "jaxlib": "flax", "flax": "flax", "optax": "flax",
}


def missing_framework_error(module_name: str, wanted: str) -> ImportError:
    top = module_name.split(".")[0]
    extra = _EXTRA_OF_MODULE.get(top)
    if extra is None:
        return ImportError(f"{wanted} needs the module {module_name!r}, which is not installed")
    return ImportError(
        f"{wanted} needs {top}, which is not installed; install it with: pip install \"rosettazoo[{extra}]\""
    )


def lazy_getattr(package: str, exports: Mapping[str, str]):
    """Build a module ``__getattr__`` that imports ``exports[name]`` (a submodule of ``package``) on first access."""

    def __getattr__(name: str):
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(f"{package}.{submodule}")
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] in _EXTRA_OF_MODULE:
                raise missing_framework_error(err.name, f"{package}.{name}") from err
            raise
        return getattr(module, name)

    return __getattr__


def exports_of(modules: Mapping[str, list[str]]) -> dict[str, str]:
    """Invert {submodule: [names]} into {name: submodule}."""
    return {name: submodule for submodule, names in modules.items() for name in names}
