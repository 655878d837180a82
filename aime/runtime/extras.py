"""Optional dependencies of the scripts, checked when a script starts, not when it first needs them.

A script that draws figures with matplotlib, or reads object boxes with OCAtari, calls
:func:`require` first thing in ``main``: without the package it prints one line naming the extra
that installs it and exits with code 2, instead of a traceback after minutes of training.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable

# module -> (the pyproject extra, the command that installs it)
EXTRAS = {
    "matplotlib": ("plots", 'pip install -e ".[plots]"'),
    # ocatari's own imports are not needed (envs.objects reads only its RAM modules), so it is found,
    # not imported; its metadata pins numpy<2 and GUI packages, hence --no-deps
    "ocatari": ("objects", "pip install --no-deps ocatari==2.2.1, or make install"),
}
_FIND_ONLY = {"ocatari"}


def missing(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that cannot be used: not installed, or failing on import."""
    out = []
    for name in modules:
        if name in _FIND_ONLY:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
        else:
            try:
                importlib.import_module(name)
                found = True
            except ImportError:
                found = False
        if not found:
            out.append(name)
    return out


def require(script: str, modules: Iterable[str], purpose: str) -> None:
    """Exit with code 2 and one line on stderr when a module ``purpose`` needs is missing.

    Args:
        script: the script's file name, for the line (``"train_nca.py"``).
        modules: module names, keys of :data:`EXTRAS`.
        purpose: what needs them, e.g. ``"the figures"``.

    Example line: ``train_nca.py: error: matplotlib is not installed, needed for the figures: install
    the 'plots' extra (pip install -e ".[plots]")``.
    """
    absent = missing(modules)
    if not absent:
        return
    extras = " and ".join(sorted({f"'{EXTRAS[name][0]}'" for name in absent}))
    commands = "; ".join(dict.fromkeys(EXTRAS[name][1] for name in absent))
    verb = "is" if len(absent) == 1 else "are"
    print(
        f"{script}: error: {', '.join(absent)} {verb} not installed, needed for {purpose}: "
        f"install the {extras} extra ({commands})",
        file=sys.stderr,
    )
    sys.exit(2)


def require_objects(script: str, env_name: str, wanted: bool = True) -> None:
    """:func:`require` OCAtari when ``wanted`` and ``env_name`` is a game with object boxes
    (``envs.objects.OBJECT_CLASSES``); an unknown game is left to the script's own check."""
    import envs
    from envs.objects import OBJECT_CLASSES

    try:
        _, game = envs.resolve(env_name)
    except ValueError:
        return
    if wanted and game in OBJECT_CLASSES:
        require(script, ["ocatari"], f"the object boxes of {env_name}")
