from types import SimpleNamespace

import pytest

from clbench.errors import UserError
from clbench.registry import Registry


def test_builtins_discovered_and_unknown_name_suggests():
    from clbench.registry import BENCHMARKS, METHODS

    assert {"zeroshot", "finetune"} <= set(METHODS.names())
    assert "smoke" in BENCHMARKS.names()
    with pytest.raises(UserError, match="did you mean 'finetune'"):
        METHODS.get("fintune")


def test_entry_point_plugins_register(monkeypatch):
    class Plugin:
        pass

    fake_ep = SimpleNamespace(name="plugin_method", load=lambda: Plugin)
    monkeypatch.setattr("clbench.registry.entry_points",
                        lambda group: [fake_ep] if group == "test.group" else [])
    registry = Registry("method", "clbench.methods", "test.group")
    assert registry.get("plugin_method") is Plugin
    assert "plugin_method" in registry.names()


def test_double_registration_is_an_error():
    registry = Registry("thing", "clbench.methods", "none")
    registry.register("x")(int)
    with pytest.raises(ValueError):
        registry.register("x")(str)
