"""Lazy re-exports for package ``__init__`` files (PEP 562 module ``__getattr__``).

``import aime`` and ``import aime.runtime`` must stay cheap: ``aime.config`` alone imports in about
0.05 s, while the model, the agent and the training loop pull in torch, tensorboard and the
environments (about 1.5 s). A name listed here is imported from its module on first access and then
cached in the package's namespace, so ``aime.VRNN`` and ``from aime import VRNN`` work without
``import aime`` paying for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import each name of ``exports`` (name -> module)
    from its module on first access and cache it in the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__
