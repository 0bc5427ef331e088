"""The public surface is pinned: every exported name exists and carries a docstring."""

import importlib
import inspect

import pytest

import uringkit as uk

PUBLIC_MODULES = ["uringkit", "uringkit.ring", "uringkit.env", "uringkit.blocking", "uringkit.processes",
                  "uringkit.readiness", "uringkit.servers", "uringkit.bench", "uringkit.plots", "uringkit.widgets",
                  "uringkit.load"]


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_every_public_name_is_documented(modname):
    mod = importlib.import_module(modname)
    assert mod.__doc__, f"{modname} has no module docstring"
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
            continue
        assert inspect.getdoc(obj), f"{modname}.{name} has no docstring"


def test_public_methods_of_ring_are_documented():
    undocumented = [name for name, member in inspect.getmembers(uk.Ring, inspect.isfunction)
                    if not name.startswith("_") and not inspect.getdoc(member)]
    assert not undocumented, f"Ring methods without a docstring: {undocumented}"


def test_all_lists_only_existing_names():
    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{modname}.__all__ names missing attributes: {missing}"
