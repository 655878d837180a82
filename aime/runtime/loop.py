"""The training loop: warm up -> collect -> train at the train ratio -> evaluate -> log -> checkpoint.

:class:`Trainer` owns the environments, the replay buffer, the agent, the logger and the
checkpoints of one run. It stops cleanly on SIGINT/SIGTERM (a checkpoint is written first), skips
updates whose loss is not finite (counted and logged; too many in a row stop the run with a
checkpoint), and resumes exactly from a checkpoint directory.

Under ``torchrun`` (see :mod:`aime.runtime.distributed`) each rank runs this loop with its own
environments, replay and seeds; gradients are averaged, so the replicas stay identical. Counters
are global: every iteration adds ``num_envs * world_size`` agent steps, so ``train.steps`` means
the same total experience with any number of ranks, and every rank makes the same decisions
(updates, logging, checkpoints, stopping) at the same iteration. Rank 0 alone logs, evaluates,
writes ``config.yaml`` and ``agent.pt``; every rank writes its replay (``replay/`` for rank 0,
``replay_rank{r}/`` and ``rank{r}.pt`` with its RNG state for the others).
"""

from __future__ import annotations

import random
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import envs
from aime.agent.agent import Agent
from aime.config import Config, flatten, save_config, to_dict
from aime.eval.objects import ObjectData, evaluate_objects
from aime.runtime import checkpoint as ckpt
from aime.runtime import distributed
from aime.runtime.device import resolve_device, resolve_precision
from aime.runtime.logger import Logger, apply_rollback, log_sizes, plan_rollback
from aime.runtime.replay import ReplayBuffer
from aime.runtime.schedule import updates_due
from aime.runtime.summaries import image_summaries
from envs.objects import OBJECT_CLASSES, record_objects

# the HPARAMS tab's metrics: written at the end of every session of a run
HPARAM_METRICS = ("hparams/eval_return", "hparams/env_steps")
OBJECT_ROWS, OBJECT_WINDOWS = 600, 24  # held-out rows with object boxes, windows of 10 evaluated
OBJECT_TAGS = {"lift": "attention_lift", "lift_best_slot": "best_slot_lift", "centroid_error_px": "centroid_error_px",
               "lift_motion": "motion_map_lift", "lift_prior_h1": "prior_lift_h1",
               "window_ratio_recon": "window_ratio_recon", "window_ratio_h1": "window_ratio_h1",
               "window_ratio_h5": "window_ratio_h5"}


class TrainingStopped(RuntimeError):
    """The run stopped early (signal or non-finite losses); a checkpoint was written."""

    def __init__(self, message: str, exit_code: int, reason: str = "stopped") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason  # a few words for the end summary: "SIGTERM", "non-finite losses"


def env_options(cfg: Config, evaluation: bool = False) -> dict[str, Any]:
    """Keyword options of ``envs.make`` from ``cfg.env`` (Catch takes none of the Atari ones)."""
    if cfg.env.name.lower() == "catch":
        return {}
    e = cfg.env
    return {
        "frame_skip": e.frame_skip, "noop_max": e.noop_max,
        "repeat_action_probability": e.repeat_action_probability,
        "full_action_space": e.full_action_space, "max_episode_frames": e.max_episode_frames,
        "terminal_on_life_loss": e.terminal_on_life_loss and not evaluation,
    }


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's environments, replay sampling and exploration (rank 0: ``seed``)."""
    return seed + 100_003 * rank


def replay_dirname(rank: int) -> str:
    """A rank's replay folder inside ``checkpoint/``."""
    return "replay" if rank == 0 else f"replay_rank{rank}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpisodeTracker:
    """Returns and lengths of the episodes of a vector env under NEXT_STEP autoreset."""

    def __init__(self, num_envs: int) -> None:
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.done = np.zeros(num_envs, dtype=bool)

    def step(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> list[tuple[int, float, int]]:
        """Account one step; returns ``(env, return, length)`` of the episodes that just ended."""
        restarted = self.done  # these sub-envs were reset by this step (reward 0)
        self.ret[restarted] = 0.0
        self.length[restarted] = 0
        self.ret += reward
        self.length += ~restarted
        self.done = np.logical_or(terminated, truncated)
        return [(int(i), float(self.ret[i]), int(self.length[i])) for i in np.flatnonzero(self.done)]


@dataclass
class EvalResult:
    """The evaluated episodes: returns and lengths in the order they ended, and how many of them were
    cut at the step cap (they count, with their return so far)."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    capped: int = 0


FrameHook = Callable[[np.ndarray, dict, np.ndarray, np.ndarray], None]


def evaluate(agent: Agent, cfg: Config, episodes: int, seed: int, greedy: bool = True,
             max_episode_steps: int | None = None, on_step: FrameHook | None = None) -> EvalResult:
    """Play ``episodes`` full episodes with the agent on fresh evaluation environments.

    Episodes are split evenly over ``cfg.env.eval_envs`` sub-environments (so short episodes are
    not over-counted) and numbered in that order: sub-env ``i`` plays episodes
    ``sum(quota[:i]) ... sum(quota[:i+1]) - 1``.

    Args:
        max_episode_steps: cut an episode after this many agent steps (default ``cfg.eval.max_steps``;
            0: no cap). A policy that never presses FIRE would otherwise play every evaluation
            episode to the environment's time limit. A cut episode counts, with its return so far.
        on_step: ``on_step(obs [N, 3, 84, 84], extras, episode int [N], last bool [N])`` sees every
            frame the agent acts on, including the last frame of every counted episode (the agent
            acts once more at the end, for its extras, e.g. attention): ``episode[i]`` is the number of
            the counted episode frame ``i`` belongs to (-1: a frame of no counted episode) and
            ``last[i]`` says it is that episode's last frame.
    """
    cap = cfg.eval.max_steps if max_episode_steps is None else max_episode_steps
    n = max(1, min(cfg.env.eval_envs, episodes))
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    first_id = np.concatenate([[0], np.cumsum(quota)[:-1]])
    env = envs.make_vector(cfg.env.name, n, **env_options(cfg, evaluation=True))
    try:
        obs, _ = env.reset(seed=seed)
        tracker = EpisodeTracker(n)
        is_first = np.ones(n, dtype=bool)
        state, result = None, EvalResult()
        counts = np.zeros(n, dtype=np.int64)
        episode = np.where(quota > 0, first_id, -1)  # the counted episode each sub-env plays (-1: none)
        cut = np.zeros(n, dtype=bool)  # episodes cut at the cap on the last step: restart those sub-envs
        while (counts < quota).any():
            action, state, extras = agent.act({"obs": obs, "is_first": is_first}, state, explore=not greedy)
            if on_step is not None:
                on_step(obs, extras, episode.copy(), tracker.done.copy())
            # a shown last frame hands its sub-env on to its next counted episode, if any
            episode = np.where(tracker.done, np.where(counts < quota, first_id + counts, -1), episode)
            obs, reward, terminated, truncated, _ = env.step(action)
            if cut.any():  # what the autoreset does after an ending: the first frame of a new episode
                restarted, _ = env.reset(options={"reset_mask": cut})
                obs = np.where(cut[:, None, None, None], restarted, obs)
                reward, terminated, truncated = np.where(cut, 0.0, reward), terminated & ~cut, truncated & ~cut
            is_first = tracker.done.copy()
            ended = tracker.step(reward, terminated, truncated)
            cut = ~tracker.done & (tracker.length >= cap) if cap > 0 else np.zeros(n, dtype=bool)
            tracker.done |= cut  # ends here: the next step starts its sub-env's next episode
            ended += [(int(i), float(tracker.ret[i]), int(tracker.length[i])) for i in np.flatnonzero(cut)]
            for i, ret, length in ended:
                if counts[i] < quota[i]:
                    result.returns.append(ret)
                    result.lengths.append(length)
                    result.capped += int(cut[i])
                    counts[i] += 1
        last = tracker.done & (episode >= 0)
        if on_step is not None and last.any():  # the last frames of the final episodes
            _, _, extras = agent.act({"obs": obs, "is_first": is_first}, state, explore=not greedy)
            on_step(obs, extras, np.where(last, episode, -1), last)
        return result
    finally:
        env.close()


class Throughput:
    """Agent steps and updates per second over the interval since the previous reading.

    A rate over the whole run decays like 1/t once a fast warm-up is behind it; each reading here
    covers only its own interval, so the chart shows the current speed.
    """

    def __init__(self, steps: int, updates: int, now: float) -> None:
        self.steps, self.updates, self.time = steps, updates, now

    def read(self, steps: int, updates: int, now: float) -> tuple[float, float]:
        """``(agent steps/s, updates/s)`` since the previous reading (or the start); restarts the interval."""
        dt = max(now - self.time, 1e-9)
        rates = (steps - self.steps) / dt, (updates - self.updates) / dt
        self.steps, self.updates, self.time = steps, updates, now
        return rates


def mean_metrics(pending: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each metric over the updates of a logging interval, as floats.

    ``Agent.train_step`` leaves its metrics as tensors on the device, so that an update never waits
    for the device to report them; here they are averaged on the device and copied to the host in
    one transfer. A key averages over the updates that report it; empty dicts (skipped updates) are
    left out.
    """
    pending = [p for p in pending if p]
    if not pending:
        return {}
    keys = list(dict.fromkeys(key for p in pending for key in p))
    device = next((v.device for p in pending for v in p.values() if isinstance(v, torch.Tensor)), None)
    as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float32, device=device).reshape(())  # noqa: E731
    means = [torch.stack([as_tensor(p[key]) for p in pending if key in p]).double().mean() for key in keys]
    return dict(zip(keys, torch.stack(means).tolist()))


def format_duration(seconds: float) -> str:
    """``'14 h 05 min'``, ``'3 min 20 s'``, ``'42 s'``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class RunEstimate:
    """How long the rest of a run takes, from the agent-step rate after warm-up.

    Warm-up (random actions, no updates) runs many times faster than training, so a rate that
    includes it promises hours where the run takes many more. The rate here is measured from the
    first step past warm-up (evaluations and checkpoints since then included, as they will recur).

    Args:
        total: the run's last agent step.
        warmup: agent steps of warm-up.
        start: the agent step and the time this session started at.
        announce_after: the expected duration is announced once training has run this many
            seconds, or sooner once it has covered ``announce_fraction`` of the training steps left.
    """

    def __init__(self, total: int, warmup: int, start: tuple[int, float], announce_after: float = 60.0,
                 announce_fraction: float = 0.05) -> None:
        self.total, self.warmup = total, warmup
        self.start_steps, self.start_time = start
        self.origin: tuple[int, float] | None = None  # (step, time) where training began (this session)
        self.now: tuple[int, float] = start
        self.announce_after, self.announce_fraction = announce_after, announce_fraction
        self.announced = False

    def observe(self, steps: int, now: float) -> None:
        """Record the step reached at ``now`` (after each iteration)."""
        if self.origin is None and steps >= self.warmup:
            self.origin = (steps, now)
        self.now = (steps, now)

    def rate(self) -> float | None:
        """Agent steps per second since training began; None before two readings past warm-up."""
        if self.origin is None:
            return None
        steps, dt = self.now[0] - self.origin[0], self.now[1] - self.origin[1]
        return steps / dt if steps > 0 and dt > 0 else None

    def remaining(self) -> float | None:
        """Seconds to ``total`` at the training rate (None while it is not measured yet)."""
        rate = self.rate()
        return None if rate is None else max(self.total - self.now[0], 0) / rate

    def postfix(self) -> str:
        """The bar's time field: the training rate and the ETA, or what they wait for."""
        remaining = self.remaining()
        if remaining is None:
            return "ETA after warm-up" if self.now[0] < self.warmup else "ETA: measuring"
        return f"{self.rate():.2f} steps/s, ETA {format_duration(remaining)}"

    def announcement(self) -> str | None:
        """The one line that states the whole run's expected duration, once the training rate is
        measured; None before that and after it was given once."""
        if self.announced or self.origin is None or self.rate() is None:
            return None
        trained_steps, trained_time = self.now[0] - self.origin[0], self.now[1] - self.origin[1]
        left = max(self.total - self.origin[0], 1)
        if trained_time < self.announce_after and trained_steps < self.announce_fraction * left:
            return None
        self.announced = True
        elapsed = self.now[1] - self.start_time
        remaining = self.remaining()
        finish = time.strftime("%a %H:%M", time.localtime(time.time() + remaining))
        return (f"expected duration: {format_duration(elapsed + remaining)} for agent steps "
                f"{self.start_steps:,} -> {self.total:,} ({format_duration(remaining)} left at "
                f"{self.rate():.2f} steps/s after warm-up; finishes around {finish})")


class Progress:
    """The progress bar: the exact agent step, updates, returns and an ETA from the training rate.

    tqdm's own rate and ETA average over the fast warm-up, and it redraws only every so many
    iterations, so during slow training iterations it showed an older step. This bar is redrawn
    before every slow phase (an iteration that trains), so what it shows is the current step.

    Args:
        total, initial, warmup: the run's last agent step, the step this session starts at, warm-up steps.
        enabled: draw the bar (the expected-duration line is printed either way).
        file: where to draw (default stderr, tqdm's).
        clock: seconds (monotonic) for the estimate; a parameter so that tests can drive it.
        min_interval: the least time between redraws that are not forced.
    """

    FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # tqdm puts ", " before the postfix

    def __init__(self, total: int, initial: int, warmup: int, enabled: bool = True, file: Any = None,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.2,
                 announce: Callable[[str], None] | None = None) -> None:
        self.clock, self.min_interval = clock, min_interval
        self.estimate = RunEstimate(total, warmup, (initial, clock()))
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not enabled,
                        bar_format=self.FORMAT, file=file, mininterval=min_interval)
        self.announce = announce or (lambda line: tqdm.write(line, file=file))
        self.status = "no episode finished yet"
        self.shown_at = -float("inf")

    def advance(self, steps: int, updates: int, last_return: float, recent: list[float]) -> None:
        """Record the run's counters (cheap; draws only if ``min_interval`` has passed)."""
        now = self.clock()
        self.estimate.observe(steps, now)
        self.bar.n = steps
        returns = (f"return last {last_return:.1f}, mean({len(recent)}) {np.mean(recent):.1f}" if recent
                   else "no episode finished yet")
        self.bar.set_postfix_str(f"{updates:,} updates, {returns}, {self.estimate.postfix()}", refresh=False)
        line = self.estimate.announcement()
        if line:
            self.announce(line)
        self.show(force=False)

    def show(self, force: bool = True) -> None:
        """Redraw now (``force``), or if ``min_interval`` has passed since the last redraw."""
        now = self.clock()
        if force or now - self.shown_at >= self.min_interval:
            self.bar.refresh()
            self.shown_at = now

    def close(self) -> None:
        self.bar.close()


class Trainer:
    """One training run.

    Args:
        cfg: the configuration (ignored when resuming: the run's saved one is used).
        logdir: the run directory (TensorBoard events, ``metrics.jsonl``, ``config.yaml``,
            ``checkpoint/``).
        resume: continue the run saved in ``logdir``.
        progress: show a tqdm progress bar.
        preset: the preset names, for the summary only.
    """

    def __init__(self, cfg: Config, logdir: str | Path, resume: bool = False, progress: bool = True,
                 preset: str = "") -> None:
        self.logdir = Path(logdir)
        self.ckpt_dir = self.logdir / "checkpoint"
        self.cfg, self.progress, self.preset = cfg, progress, preset
        self.device = distributed.local_device(resolve_device(cfg.device))
        self.precision = resolve_precision(cfg.train.precision, self.device)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.seed = rank_seed(cfg.seed, self.rank)
        self.env_steps = self.updates = self.episodes = 0
        self.credit = 0.0
        self.nonfinite_total = self.nonfinite_streak = 0
        self.last_return = float("nan")
        self.recent: list[float] = []
        self.last_eval = float("nan")
        self.last_eval_step: int | None = None
        self.saved_step: int | None = None  # the agent step of the newest complete checkpoint
        self.clock: Callable[[], float] = time.monotonic  # rates and durations (tests drive it)
        self._signal: int | None = None
        seed_everything(cfg.seed)  # the same initial networks on every rank (broadcast below makes sure)
        self.env = envs.make_vector(cfg.env.name, cfg.env.num_envs, **env_options(cfg))
        self.num_actions = int(self.env.single_action_space.n)
        obs_shape = tuple(self.env.single_observation_space.shape)
        self.agent = Agent(cfg, self.num_actions, self.device, sync=distributed.gradient_sync(),
                           precision=self.precision.name)
        if self.rank > 0:  # each rank explores and imagines with its own random stream
            seed_everything(self.seed)
        self.replay = ReplayBuffer(cfg.replay.capacity, cfg.env.num_envs, obs_shape, seed=self.seed)
        if resume:
            rollback = self._prepare_resume()
            self._load()
            apply_rollback(rollback)  # only once the checkpoint has loaded: a refused resume changes nothing
        else:
            self.logdir.mkdir(parents=True, exist_ok=True)
            if distributed.is_main():
                save_config(cfg, self.logdir / "config.yaml")
        distributed.broadcast_parameters(self.agent)
        self.logger = Logger(self.logdir, enabled=distributed.is_main(),
                             purge_step=self.env_steps + 1 if resume else None)
        if not resume:
            self.logger.hyperparameters(self.hyperparameters(), metric_tags=HPARAM_METRICS)
        self.rng = np.random.default_rng(self.seed + 7919 * (self.env_steps + 1))
        self._objects: ObjectData | bool | None = None  # rows with object boxes, recorded when first needed

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path:
        """Write a new generation of ``checkpoint/`` crash-safely (see :mod:`aime.runtime.checkpoint`):
        replay, then ``agent.pt``, into a staging folder, then swap it in; return the folder.

        Distributed, every rank calls it at the same iteration: each writes its replay (and, past
        rank 0, ``rank{r}.pt`` with its RNG state and a digest of its networks), then rank 0 writes
        ``agent.pt`` once all are on disk, so a staged ``agent.pt`` marks a complete checkpoint.
        """
        staging = ckpt.staging_dir(self.ckpt_dir)
        if distributed.is_main():
            ckpt.begin_save(self.ckpt_dir)
        distributed.barrier()
        self.replay.save(staging / replay_dirname(self.rank))
        if self.rank > 0:
            ckpt.save_agent_state(staging / f"rank{self.rank}.pt", {
                "rank": self.rank, "rng": ckpt.rng_state(),
                "counters": {"env_steps": self.env_steps, "episodes": self.episodes},
                "state_digest": distributed.state_digest(self.agent.state_dict()),
            })
        distributed.barrier()
        if distributed.is_main():
            self._save_agent(staging / "agent.pt")
            ckpt.commit(self.ckpt_dir)
        distributed.barrier()
        self.saved_step = self.env_steps
        return self.ckpt_dir

    def _save_agent(self, path: Path) -> None:
        self.logger.flush()  # the logs' sizes below include every row logged up to this checkpoint
        ckpt.save_agent_state(path, {
            "agent": self.agent.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.agent.optimizers().items()},
            "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
                         "credit": self.credit, "nonfinite_total": self.nonfinite_total},
            "rng": ckpt.rng_state(),
            "config": to_dict(self.cfg),
            "num_actions": self.num_actions,
            "world_size": self.world,
            "logs": log_sizes(self.logdir),  # a resume cuts the logs back to these (aime.runtime.logger)
        })

    def _prepare_resume(self) -> dict[Path, int | None]:
        """Before loading: make ``checkpoint/`` the newest complete generation (a save cut short by a
        crash leaves a partial one, see :func:`aime.runtime.checkpoint.recover`), and check the run's
        logs against the sizes that checkpoint recorded. Returns the logs' rollback (applied once the
        checkpoint has loaded). Rank 0 does both; an error is raised on every rank."""
        problem, plan = None, {}
        if distributed.is_main():
            try:
                ckpt.recover(self.ckpt_dir)
                payload = ckpt.load_agent_state(self.ckpt_dir / "agent.pt", mmap=True)
                step = int(payload["counters"]["env_steps"])
                plan = plan_rollback(self.logdir, payload.get("logs"), step)
            except (KeyError, TypeError, ValueError) as error:  # CheckpointError and LogError are ValueErrors
                problem = error if isinstance(error, ValueError) else ckpt.CheckpointError(
                    f"{self.ckpt_dir / 'agent.pt'} has no counters: not an agent checkpoint ({error!r})")
        problem = distributed.broadcast_object(problem)
        if problem is not None:
            raise problem
        return plan

    def _load(self) -> None:
        payload = ckpt.load_agent_state(self.ckpt_dir / "agent.pt")
        saved_world = int(payload.get("world_size", 1))
        if saved_world != self.world:
            raise ckpt.CheckpointError(
                f"checkpoint was written by {saved_world} process(es), this run has {self.world}: resume it with "
                f"the same number of processes (torchrun --nproc_per_node ... x --nnodes ... = {saved_world})")
        if payload.get("num_actions") != self.num_actions:
            raise ckpt.CheckpointError(
                f"checkpoint was made for {payload.get('num_actions')} actions, "
                f"this environment has {self.num_actions}")
        try:
            self.agent.load_state_dict(payload["agent"])
            for name, opt in self.agent.optimizers().items():
                opt.load_state_dict(payload["optimizers"][name])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ckpt.CheckpointError(f"checkpoint does not fit this configuration: {error}") from error
        self.replay = ReplayBuffer.load(self.ckpt_dir / replay_dirname(self.rank))
        counters = payload["counters"]
        self.env_steps, self.updates = int(counters["env_steps"]), int(counters["updates"])
        self.saved_step = self.env_steps
        self.episodes, self.credit = int(counters["episodes"]), float(counters["credit"])
        self.nonfinite_total = int(counters["nonfinite_total"])
        rng = payload["rng"]
        if self.rank > 0:
            own = ckpt.load_agent_state(self.ckpt_dir / f"rank{self.rank}.pt")
            if int(own["counters"]["env_steps"]) != self.env_steps:
                raise ckpt.CheckpointError(
                    f"rank{self.rank}.pt is at step {own['counters']['env_steps']}, agent.pt at {self.env_steps}: "
                    "the checkpoint is incomplete (interrupted while saving?)")
            self.episodes, rng = int(own["counters"]["episodes"]), own["rng"]
        per_row = self.cfg.env.num_envs * self.world  # agent steps per replay row (one row per iteration)
        if self.replay.total_added * per_row != self.env_steps:
            raise ckpt.CheckpointError(
                f"{replay_dirname(self.rank)} holds {self.replay.total_added * per_row} agent steps, agent.pt counts "
                f"{self.env_steps}: the checkpoint is incomplete (interrupted while saving?)")
        ckpt.set_rng_state(rng)

    # -- the loop ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signal = signum

    def summary(self) -> str:
        counts = self.agent.parameter_counts()
        ranks = f" x {self.world} ranks" if self.world > 1 else ""
        lines = [
            f"AIME | env {self.cfg.env.name} ({self.num_actions} actions, {self.cfg.env.num_envs} envs{ranks}) | "
            f"preset {self.preset or '-'} | device {self.device} | precision {self.precision}",
            "parameters: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
            f"logdir: {self.logdir}",
            f"TensorBoard: tensorboard --logdir {self.logdir.parent}",
        ]
        return "\n".join(lines)

    def hyperparameters(self) -> dict[str, Any]:
        """The flattened configuration as run: ``device`` and ``train.precision`` as resolved, not ``auto``."""
        return {**flatten(self.cfg), "device": str(self.device), "train.precision": self.precision.name}

    def run(self) -> dict[str, Any]:
        """Train until ``cfg.train.steps`` agent steps; returns a summary dict.

        Every exit (the end, SIGINT/SIGTERM, non-finite losses, a crash) prints the end summary
        (:meth:`end_summary`) on rank 0: counters, time, the last evaluation, the checkpoint and
        the command that continues the run.
        """
        cfg = self.cfg
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        start_time, start_steps = self.clock(), self.env_steps
        progress = Progress(cfg.train.steps, self.env_steps, cfg.train.warmup_steps, clock=self.clock,
                            enabled=self.progress and distributed.is_main(),
                            announce=self._print if distributed.is_main() else lambda line: None)
        outcome = "crashed"
        try:
            self._loop(progress)
            # the final evaluation, unless the periodic one has just evaluated this very step
            if self.cfg.eval.episodes > 0 and distributed.is_main() and self.last_eval_step != self.env_steps:
                progress.show()
                self._evaluate()
            self.save()
            outcome = "done"
        except TrainingStopped as stop:
            outcome = f"stopped ({stop.reason})"
            raise  # the checkpoint is already written
        except BaseException as error:
            outcome = f"crashed ({type(error).__name__})"
            # a crash leaves a loadable checkpoint (the last consistent state of the run); with
            # several ranks a rank-local crash cannot save consistently (the others are elsewhere),
            # so the last periodic checkpoint stands
            if self.world > 1:
                raise
            try:
                self.save()
            finally:
                raise
        finally:
            progress.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            # the HPARAMS tab's metrics, as the session leaves them
            self.logger.scalars({"hparams/eval_return": self.last_eval, "hparams/env_steps": self.env_steps},
                                self.env_steps)
            self.logger.close()
            self.env.close()
            elapsed = self.clock() - start_time
            # a collective only when every rank is known to be here (the normal end)
            episodes = self.episodes if outcome != "done" else int(distributed.all_reduce_scalar(self.episodes, "sum"))
            if distributed.is_main():
                self._print(self.end_summary(outcome, episodes, elapsed, start_steps))
        return {"env_steps": self.env_steps, "updates": self.updates, "episodes": episodes,
                "eval_return": self.last_eval, "seconds": elapsed,
                "sps": (self.env_steps - start_steps) / max(elapsed, 1e-9),
                "nonfinite_updates": self.nonfinite_total, "checkpoint": str(self.ckpt_dir)}

    @staticmethod
    def _print(line: str) -> None:
        """A line on stdout that does not tear the progress bar."""
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    def end_summary(self, outcome: str, episodes: int, seconds: float, start_steps: int) -> str:
        """What a person needs after a run ends, however it ended: counters, time and the last
        evaluation; the checkpoint; the command that continues the run (three lines).

        ``outcome``: ``done``, ``stopped (SIGTERM)``, ``crashed (RuntimeError)``...
        """
        rate = (self.env_steps - start_steps) / max(seconds, 1e-9)
        evaluation = (f"eval return {self.last_eval:.2f} (at step {self.last_eval_step:,})"
                      if self.last_eval_step is not None else "no evaluation yet")
        head = (f"{outcome}: {self.env_steps:,} agent steps, {self.updates:,} updates, {episodes:,} episodes in "
                f"{seconds:.0f} s ({rate:.1f} steps/s); {evaluation}")
        if self.saved_step is None:
            return head + "\ncheckpoint: none written (nothing to resume)"
        launcher = f"torchrun --nproc_per_node={self.world}" if self.world > 1 else "python"
        command = f"{launcher} scripts/train_agent.py --resume {shlex.quote(str(self.logdir))}"
        if self.saved_step >= self.cfg.train.steps:  # finished: continuing needs a larger budget
            command += f" --steps {2 * max(self.cfg.train.steps, 1)}"
        return (f"{head}\ncheckpoint: {self.ckpt_dir} (agent step {self.saved_step:,})\n"
                f"continue: {command}")

    def _loop(self, progress: Progress) -> None:
        cfg, n = self.cfg, self.cfg.env.num_envs
        t = cfg.train
        obs, _ = self.env.reset(seed=self.seed + 1000 * (self.env_steps // max(n, 1)))
        is_first = np.ones(n, dtype=bool)
        reward = np.zeros(n, dtype=np.float32)
        is_terminal = np.zeros(n, dtype=bool)
        tracker = EpisodeTracker(n)
        state = None
        pending: list[dict[str, Any]] = []  # the interval's update metrics, tensors until logged
        throughput = Throughput(self.env_steps, self.updates, self.clock())
        next_scalars = self._next(self.env_steps, cfg.log.scalars_every)
        next_images = self._next(self.env_steps, cfg.log.images_every)
        next_eval = self._next(self.env_steps, cfg.eval.every)
        next_ckpt = self._next(self.env_steps, cfg.log.checkpoint_every)
        while self.env_steps < t.steps:
            signum = self._agreed_signal()
            if signum:
                path = self.save()
                name = signal.Signals(signum).name
                raise TrainingStopped(f"{name} received: checkpoint saved to {path}", 128 + signum, reason=name)
            if self.env_steps < t.warmup_steps:
                action = self.rng.integers(0, self.num_actions, size=n)
            else:
                action, state, _ = self.agent.act({"obs": obs, "is_first": is_first}, state, explore=True)
            self.replay.add(obs, action, reward, is_first, is_terminal)
            obs, reward, terminated, truncated, _ = self.env.step(action)
            reward = reward.astype(np.float32)
            is_first, is_terminal = tracker.done.copy(), terminated.astype(bool)
            for _, ret, length in tracker.step(reward, terminated, truncated):
                self.episodes += 1
                self.last_return = ret
                self.recent = (self.recent + [ret])[-20:]
                self.logger.scalars({"charts/episodic_return": ret, "charts/episodic_length": length}, self.env_steps)
            self.env_steps += n * self.world

            updates = 0
            if self.env_steps >= t.warmup_steps and self.replay.can_sample(t.seq_len):
                updates, self.credit = updates_due(self.credit, n, t.train_ratio, t.batch_size, t.seq_len)
            progress.advance(self.env_steps, self.updates, self.last_return, self.recent)
            evaluating = bool(cfg.eval.every) and self.env_steps >= next_eval
            if updates > 0 or evaluating or self.env_steps >= min(next_images, next_ckpt):
                progress.show()  # a slow phase follows: the bar shows the step the run is at
            for _ in range(updates):
                pending.append(self._train_once())
            if self.env_steps >= next_scalars:
                next_scalars += cfg.log.scalars_every
                self._log_scalars(pending, throughput)
                pending = []
            if self.env_steps >= next_images:
                next_images += cfg.log.images_every
                if distributed.is_main():
                    self._log_images()
            if evaluating:
                next_eval += cfg.eval.every
                if distributed.is_main():  # the other ranks wait at their next collective
                    self._evaluate()
            if self.env_steps >= next_ckpt:
                next_ckpt += cfg.log.checkpoint_every
                self.save()

    def _agreed_signal(self) -> int:
        """The signal to stop on (0: none); with several ranks the largest any rank received, so
        that all stop at the same iteration."""
        if self.world == 1:
            return self._signal or 0
        return int(distributed.all_reduce_scalar(self._signal or 0, "max"))

    @staticmethod
    def _next(current: int, every: int) -> int | float:
        if every <= 0:
            return float("inf")
        return (current // every + 1) * every

    def _train_once(self) -> dict[str, Any]:
        t = self.cfg.train
        batch = self.replay.sample(t.batch_size, t.seq_len)
        metrics, finite = self.agent.train_step(batch)
        if finite:
            self.updates += 1
            self.nonfinite_streak = 0
            return metrics
        self.nonfinite_total += 1
        self.nonfinite_streak += 1
        self.logger.scalars({"charts/nonfinite_updates": self.nonfinite_total}, self.env_steps)
        if self.nonfinite_streak >= t.max_nonfinite_updates:
            path = self.save()
            raise TrainingStopped(
                f"{self.nonfinite_streak} updates in a row had a non-finite loss; stopped, checkpoint saved to "
                f"{path}. Try a lower learning rate (--set train.model_lr=...) or check the inputs.", 1,
                reason="non-finite losses")
        return {}

    def _log_scalars(self, pending: list[dict[str, Any]], throughput: Throughput) -> None:
        """The interval's mean losses and its own throughput (not the run's average since start)."""
        values = mean_metrics(pending)
        sps, ups = throughput.read(self.env_steps, self.updates, self.clock())
        values.update({
            "charts/SPS": sps,
            "charts/train_steps": self.updates,
            "charts/updates_per_second": ups,
            "charts/replay_size": len(self.replay),
            "charts/nonfinite_updates": self.nonfinite_total,
            **self.agent.learning_rates(),
        })
        self.logger.scalars(values, self.env_steps)

    def _log_images(self) -> None:
        t = self.cfg.train
        if not self.replay.can_sample(min(t.seq_len, 16)):
            return
        length = min(t.seq_len, 16)
        batch = self.agent.to_tensors(self.replay.sample(2, length))
        self.logger.images(image_summaries(self.agent.world_model, batch), self.env_steps)
        self._log_objects()
        self.logger.flush()

    def _log_objects(self) -> None:
        """``objects/...`` scalars against OCAtari's boxes (games that have them): the posterior's and
        the best slot's lift on each object, and the reconstruction's and open-loop window ratios."""
        if self._objects is None:  # recorded once, with its own seed: the same rows every time
            _, game = envs.resolve(self.cfg.env.name)
            self._objects = False
            if game in OBJECT_CLASSES:
                try:
                    self._objects = ObjectData.from_record(record_objects(game, OBJECT_ROWS, seed=self.cfg.seed + 4242))
                except ModuleNotFoundError as error:  # ocatari is an optional extra
                    tqdm.write(f"objects/ metrics off: {error}")
        if self._objects is False:
            return
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # leaves training's random stream as it was
            result = evaluate_objects(self.agent.world_model, self._objects, windows=OBJECT_WINDOWS)
        values = {}
        for name, row in result["classes"].items():
            for key, tag in OBJECT_TAGS.items():
                if key in row and np.isfinite(row[key]):
                    values[f"objects/{tag}_{name}"] = row[key]
        self.logger.scalars(values, self.env_steps)

    def _evaluate(self) -> None:
        e = self.cfg.eval
        # a sampled evaluation draws from torch's generator: fork it, so that evaluating (or not,
        # or how often) leaves the training run's random stream as it was
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            result = evaluate(self.agent, self.cfg, e.episodes, seed=self.cfg.seed + 10_000 + self.env_steps,
                              greedy=e.greedy)
        if result.capped:
            self._print(f"eval at step {self.env_steps:,}: {result.capped} of {len(result.returns)} episodes hit "
                        f"the cap of eval.max_steps={e.max_steps:,} agent steps (a stalling policy? e.g. one "
                        "that never presses FIRE); they count with their return so far")
        if result.returns:
            self.last_eval, self.last_eval_step = float(np.mean(result.returns)), self.env_steps
            self.logger.scalars({"eval/episodic_return": self.last_eval,
                                 "eval/episodic_length": float(np.mean(result.lengths)),
                                 "eval/episodic_return_std": float(np.std(result.returns)),
                                 "eval/capped_episodes": result.capped}, self.env_steps)


def config_from_checkpoint(logdir: str | Path) -> Config:
    """The configuration a run in ``logdir`` was started with (for ``--resume``)."""
    from aime.config import load_config_file

    path = Path(logdir) / "config.yaml"
    if not path.is_file():
        raise ckpt.CheckpointError(f"{logdir} has no config.yaml: not an AIME run directory")
    return load_config_file(path)


