"""The benchmark registry: what every benchmark may read (:class:`Settings`), how one registers
(:func:`benchmark`), and the loop that runs a selection of them (:func:`run_benchmarks`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["BENCHMARKS", "Benchmark", "Settings", "benchmark", "default_selection", "run_benchmarks"]


@dataclass(frozen=True)
class Settings:
    """What every benchmark may read."""

    batch: int
    image_size: int
    repeats: int
    warmup: int
    device: str
    seed: int
    seq_len: int = 64
    """World-model window length T (the world model always runs at 84x84)."""
    wm_presets: tuple[str, ...] = ("cpu", "atari100k")
    """Presets whose ``model`` sizes the world-model, update and acting-loop benchmarks use."""
    env_steps: int = 2000
    """Agent steps per timed repeat of the environment benchmark (a vector env steps ``env_steps // N`` times)."""
    acting_steps: int = 50
    """Vector steps (of all ``ACTING_ENVS`` sub-envs) per timed repeat of the acting-loop benchmark."""
    overrides: tuple[str, ...] = ()
    """``key=value`` settings applied over each of ``wm_presets`` (e.g. ``model.deter=256``)."""
    clock: str = "wall"
    """What the times read (:func:`aime.bench.measure.clock`): ``wall`` seconds, or ``cpu`` seconds of
    the process (all its threads together), which other processes on the cores do not inflate."""


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: ``run(settings)`` returns rows with ``item``, ``value``, ``unit`` (optionally ``note``)."""

    name: str
    description: str
    run: Callable[[Settings], list[dict]]
    opt_in: bool = False
    """Run only when named explicitly (e.g. minutes of compilation)."""


# In registration order, which is the order a full run takes (aime.bench imports the modules in that order).
BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str, opt_in: bool = False) -> Callable:
    """Register ``fn(settings) -> rows`` under ``name`` (``opt_in``: only when named explicitly)."""

    def register(fn: Callable[[Settings], list[dict]]) -> Callable[[Settings], list[dict]]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, description, fn, opt_in)
        return fn

    return register


def default_selection() -> list[str]:
    """Every registered benchmark that is not opt-in, in registration order."""
    return [name for name, bench in BENCHMARKS.items() if not bench.opt_in]


def run_benchmarks(settings: Settings, names: Iterable[str] | None = None) -> list[dict]:
    """Run ``names`` (default :func:`default_selection`) in order; each row gains its ``benchmark`` name."""
    results = []
    for name in default_selection() if names is None else names:
        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}")
        for row in BENCHMARKS[name].run(settings):
            results.append({"benchmark": name, **row})
    return results
