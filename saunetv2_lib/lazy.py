"""Public names of a package that load on first use (PEP 562), so importing it stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package`` exporting names lazily.

    Args:
        package: the package's ``__name__``.
        exports: ``{submodule: "Name other_name ..."}``, the names each submodule gives
            (separated by white space).
        namespace: the package's ``globals()``; a name is cached there on first access.

    Raises:
        ValueError: a name is given by two submodules.
    """
    source: dict[str, str] = {}
    for submodule, names in exports.items():
        for name in names.split():
            if name in source:
                raise ValueError(
                    f"{package}: {name!r} is exported by both {source[name]!r} and {submodule!r}."
                )
            source[name] = submodule

    def __getattr__(name: str) -> Any:
        if name not in source:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{source[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(source))

    return __getattr__, __dir__, sorted(source)
