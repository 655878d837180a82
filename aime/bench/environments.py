"""Benchmarks of the environments: throughput with random actions (``env``: one env and an 8-env
vector env, Breakout and Catch) and what the training loop does per step while collecting
(``acting_loop``: 8 vector Breakout envs + ``Agent.act``, full vs ablation). Rates count agent
steps of every sub-env."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import envs
from aime.agent.agent import Agent
from aime.bench.agent_update import agents
from aime.bench.measure import ratio_row, time_calls
from aime.bench.registry import Settings, benchmark

__all__ = ["ACTING_ENVS", "ACTING_GAME", "ENV_GAMES", "VECTOR_ENVS", "bench_acting_loop", "bench_env"]

ENV_GAMES = ("Breakout", "Catch")
VECTOR_ENVS = 8
ACTING_ENVS = VECTOR_ENVS  # what the training loop of the cpu preset runs
ACTING_GAME = "Breakout"


def random_steps_single(env, steps: int, rng: np.random.Generator) -> Callable[[], None]:
    """``steps`` random-action steps of one env, resetting it when an episode ends."""
    n = int(env.action_space.n)

    def run() -> None:
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
            if terminated or truncated:
                env.reset()

    return run


def random_steps_vector(env, steps: int, rng: np.random.Generator) -> Callable[[], None]:
    """``steps`` random-action steps of a vector env (it resets its sub-envs itself)."""
    n, num = int(env.single_action_space.n), env.num_envs

    def run() -> None:
        for _ in range(steps):
            env.step(rng.integers(0, n, size=num))

    return run


@benchmark("env", "environment throughput with random actions: one env and an 8-env vector env (Breakout, Catch)")
def bench_env(settings: Settings) -> list[dict]:
    rows = []
    for game in ENV_GAMES:
        for num_envs in (1, VECTOR_ENVS):
            rng = np.random.default_rng(settings.seed)
            steps = max(1, settings.env_steps // num_envs)  # steps of the (vector) env per repeat
            # envs.make / envs.make_vector looked up at call time: tests replace them with slowed-down envs
            env = envs.make(game) if num_envs == 1 else envs.make_vector(game, num_envs)
            try:
                env.reset(seed=settings.seed)
                run = (random_steps_single if num_envs == 1 else random_steps_vector)(env, steps, rng)
                median, times = time_calls(run, settings, settings.repeats)
            finally:
                env.close()
            agent_steps = steps * num_envs  # every sub-env's step counts
            label = "1 env" if num_envs == 1 else f"{num_envs}-env vector env"
            how = f"{steps} steps" if num_envs == 1 else f"{steps} steps x {num_envs} envs"
            rows.append(
                {
                    "item": f"{game}, {label}, random actions",
                    "value": round(agent_steps / median, 1),
                    "unit": "agent steps/s",
                    "note": f"median of {len(times)} x {how}",
                }
            )
    return rows


def _time_acting(agent: Agent, env, settings: Settings) -> tuple[float, list[float]]:
    """Median time of ``settings.acting_steps`` collection steps (``Agent.act`` with exploration, then
    ``env.step``) from a fresh reset, the agent's state carried across steps and repeats."""
    obs, _ = env.reset(seed=settings.seed)
    loop = {
        "obs": obs,
        "is_first": np.ones(ACTING_ENVS, dtype=bool),
        "done": np.zeros(ACTING_ENVS, dtype=bool),
        "state": None,
    }

    def run() -> None:
        for _ in range(settings.acting_steps):
            observation = {"obs": loop["obs"], "is_first": loop["is_first"]}
            action, loop["state"], _ = agent.act(observation, loop["state"], explore=True)
            loop["obs"], _, terminated, truncated, _ = env.step(action)
            # NEXT_STEP autoreset: the step after an episode's last returns a first observation
            loop["is_first"], loop["done"] = loop["done"], np.logical_or(terminated, truncated)

    return time_calls(run, settings, settings.repeats)


@benchmark(
    "acting_loop",
    "the training loop's acting: 8 vector Breakout envs + Agent.act (explore) per step, "
    "at preset sizes, attention schema on vs off",
)
def bench_acting_loop(settings: Settings) -> list[dict]:
    steps = settings.acting_steps
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        env = envs.make_vector(ACTING_GAME, ACTING_ENVS)
        try:
            num_actions = int(env.single_action_space.n)
            for label, agent in agents(settings, preset, num_actions).items():
                medians[label], times = _time_acting(agent, env, settings)
                rows.append(
                    {
                        "item": f"{ACTING_GAME} x {ACTING_ENVS} envs + Agent.act {preset} {label}",
                        "value": round(steps * ACTING_ENVS / medians[label], 1),
                        "unit": "agent steps/s",
                        "note": f"median of {len(times)} x {steps} steps x {ACTING_ENVS} envs",
                    }
                )
        finally:
            env.close()
        rows.append(
            ratio_row(
                f"{ACTING_GAME} x {ACTING_ENVS} envs + Agent.act {preset}: step time full / ablation",
                medians["full"],
                medians["ablation"],
            )
        )
    return rows
