import sys
import types

import pytest

from saunetv2_lib.lazy import lazy_exports


def test_a_name_loads_from_its_submodule_on_first_access_and_is_cached():
    namespace: dict = {}
    getattr_, dir_, names = lazy_exports(
        "saunetv2_lib", {"paper": "METRICS", "paths": "REPO_ROOT"}, namespace
    )
    assert names == ["METRICS", "REPO_ROOT"]
    from saunetv2_lib import paper

    assert getattr_("METRICS") is paper.METRICS
    assert namespace["METRICS"] is paper.METRICS
    assert {"METRICS", "REPO_ROOT"} <= set(dir_())
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getattr_("nothing")


def test_a_name_given_twice_is_an_error():
    with pytest.raises(ValueError, match="'A' is exported by both 'x' and 'y'"):
        lazy_exports("pkg", {"x": "A B", "y": "A"}, {})


def test_nothing_is_imported_before_the_first_access(monkeypatch):
    monkeypatch.delitem(sys.modules, "saunetv2_lib.host", raising=False)
    lazy_exports("saunetv2_lib", {"host": "cpu_model"}, {})
    assert "saunetv2_lib.host" not in sys.modules
    assert isinstance(sys.modules["saunetv2_lib"], types.ModuleType)
