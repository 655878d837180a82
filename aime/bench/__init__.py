"""Benchmarks of AIME's modules: a registry of named benchmarks, each a function
``fn(settings) -> list[dict]`` of result rows (``item``, ``value``, ``unit``, optionally ``note``).
``scripts/benchmark.py`` is the command line (process set-up, the table, ``--json`` / ``--out``).

Timings are medians over ``settings.repeats`` (after ``settings.warmup`` untimed runs); compare them
as ratios within one run, since shared machines are noisy. Every full / ablation ratio (attention
schema on / off) is computed in the same run from the unrounded medians.

- ``aime.bench.schema``: ``params``, ``posterior``, ``prior``: the attention-schema components
  (B = ``batch``), one forward + backward each; ``slots``: the slot attention over T steps as the
  time loop runs it, fused against the reference loop, fp32 and bf16;
- ``aime.bench.world_model``: ``world_model``: ``VRNN.loss`` + backward + Adam step, B x T at each of
  ``wm_presets``' sizes, full vs ablation, with peak memory; ``acting``: ``VRNN.observe_step``, one
  filtering step of B / 2 frames; ``pooling``: the feature pyramid's 2x2 pooling over B x T frames,
  its written-out backward against ``adaptive_avg_pool2d``'s, fp32 and bf16;
- ``aime.bench.agent_update``: ``update``: ``Agent.train_step`` on a replay-like numpy batch, full vs
  ablation, its behaviour part timed alone inside the same calls, peak memory and the arithmetic of
  one update (GFLOP and the rate achieved); ``compile`` (opt-in): eager vs ``torch.compile``;
- ``aime.bench.environments``: ``env``: random-action throughput of one env and an 8-env vector env
  (Breakout and Catch), in agent steps/s counting every sub-env; ``acting_loop``: 8 vector Breakout
  envs + ``Agent.act`` (explore), full vs ablation.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA (reset before each measurement) and
otherwise the process's resident high-water mark (``ru_maxrss``), which cannot be reset: it also
covers everything run before in the process.

To add a benchmark, decorate ``fn(settings) -> list[dict]`` with
``@aime.bench.benchmark("name", "description")`` in a module that this package imports.
"""

# Importing the benchmark modules registers them, and the order of registration is the order of a full run
# (components, world model, agent update, environments): not alphabetical, so isort leaves these lines alone.
# isort: off
from aime.bench import schema  # noqa: F401
from aime.bench import world_model  # noqa: F401
from aime.bench import agent_update  # noqa: F401
from aime.bench import environments  # noqa: F401

# isort: on
from aime.bench.measure import count_parameters, time_calls, time_forward_backward
from aime.bench.registry import BENCHMARKS, Benchmark, Settings, benchmark, default_selection, run_benchmarks
from aime.bench.report import machine_info, markdown

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Settings",
    "benchmark",
    "count_parameters",
    "default_selection",
    "machine_info",
    "markdown",
    "run_benchmarks",
    "time_calls",
    "time_forward_backward",
]
