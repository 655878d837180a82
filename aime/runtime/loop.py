"""The training loop: warm up -> collect -> train at the train ratio -> evaluate -> log -> checkpoint.

:class:`Trainer` owns the environments, the replay buffer, the agent, the logger and the
checkpoints of one run. It stops cleanly on SIGINT/SIGTERM (a checkpoint is written first), skips
updates whose loss is not finite (counted and logged; too many in a row stop the run with a
checkpoint), and resumes from a checkpoint directory: networks, optimisers, replay, counters and
random streams as saved, the environments' games started anew (ale-py's vector environment cannot
save a game in progress).

Under ``torchrun`` (see :mod:`aime.runtime.distributed`) each rank runs this loop with its own
environments, replay and seeds; gradients are averaged, so the replicas stay identical. Counters
are global: every iteration adds ``num_envs * world_size`` agent steps, so ``train.steps`` means
the same total experience with any number of ranks, and every rank makes the same decisions
(updates, logging, checkpoints, stopping) at the same iteration. Rank 0 alone logs, evaluates,
writes ``config.yaml`` and ``agent.pt``; every rank writes its replay (``replay/`` for rank 0,
``replay_rank{r}/`` and ``rank{r}.pt`` with its RNG state for the others).

This module holds the :class:`Trainer` alone; what it uses that stands on its own lives beside it:
:mod:`~aime.runtime.environments` (``env_options``, ``EpisodeTracker``), :mod:`~aime.runtime.evaluation`
(``evaluate``), :mod:`~aime.runtime.progress` (the bar and the ETA), :mod:`~aime.runtime.metrics`
(interval means, throughput), :mod:`~aime.runtime.object_metrics`, :mod:`~aime.runtime.schedule`
(``updates_due``), :mod:`~aime.runtime.seeding`, :mod:`~aime.runtime.run_dir` and
:mod:`~aime.runtime.stopping` (``TrainingStopped``). It stays above 400 lines because the Trainer's
methods (collect, train, log, evaluate, save, resume) share one run's counters and state.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import envs
from aime.agent.agent import Agent
from aime.config import RESUME_KEYS, Config, flatten, save_config, to_dict
from aime.runtime import checkpoint as ckpt
from aime.runtime import distributed
from aime.runtime.device import resolve_device, resolve_precision
from aime.runtime.environments import EpisodeTracker, env_options
from aime.runtime.evaluation import evaluate
from aime.runtime.logger import Logger, apply_rollback, log_sizes, plan_rollback
from aime.runtime.metrics import Throughput, mean_metrics
from aime.runtime.object_metrics import ObjectMetrics
from aime.runtime.prefetch import BurstPrefetcher, prefetch_enabled
from aime.runtime.progress import Progress
from aime.runtime.replay import ReplayBuffer
from aime.runtime.schedule import updates_due
from aime.runtime.seeding import rank_seed, seed_everything
from aime.runtime.stopping import TrainingStopped
from aime.runtime.summaries import image_summaries

# the HPARAMS tab's metrics: written at the end of every session of a run
HPARAM_METRICS = ("hparams/eval_return", "hparams/env_steps")


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

    def __init__(
        self, cfg: Config, logdir: str | Path, resume: bool = False, progress: bool = True, preset: str = ""
    ) -> None:
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
        self.agent = Agent(
            cfg, self.num_actions, self.device, sync=distributed.gradient_sync(), precision=self.precision.name
        )
        if self.rank > 0:  # each rank explores and imagines with its own random stream
            seed_everything(self.seed)
        self.replay = ReplayBuffer(cfg.replay.capacity, cfg.env.num_envs, obs_shape, seed=self.seed)
        self.prefetcher = BurstPrefetcher(self._next_batch, prefetch_enabled(cfg.replay.prefetch, self.device))
        self.resume_changes: list[str] = []  # ``key=value`` of the RESUME_KEYS this session changed
        if resume:
            rollback = self._prepare_resume()
            self._load()
            apply_rollback(rollback)  # only once the checkpoint has loaded: a refused resume changes nothing
        else:
            self.logdir.mkdir(parents=True, exist_ok=True)
            if distributed.is_main():
                save_config(cfg, self.logdir / "config.yaml")
        distributed.broadcast_parameters(self.agent)
        self.logger = Logger(
            self.logdir, enabled=distributed.is_main(), purge_step=self.env_steps + 1 if resume else None
        )
        if resume:  # with the settings this session changed (RESUME_KEYS), if any
            changed = {"changed": self.resume_changes} if self.resume_changes else {}
            self.logger.event("resume", self.env_steps, **changed)
        else:
            self.logger.hyperparameters(self.hyperparameters(), metric_tags=HPARAM_METRICS)
        self.rng = np.random.default_rng(self.seed + 7919 * (self.env_steps + 1))
        self._objects = ObjectMetrics(cfg.env.name, cfg.seed + 4242)  # its rows are recorded when first needed

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path:
        """Write a new generation of ``checkpoint/`` crash-safely (see :mod:`aime.runtime.checkpoint`):
        replay, then ``agent.pt``, into a staging folder, then swap it in; return the folder.

        Distributed, every rank calls it at the same iteration: each writes its replay (and, past
        rank 0, ``rank{r}.pt`` with its RNG state and a digest of its networks), then rank 0 writes
        ``agent.pt`` once all are on disk, so a staged ``agent.pt`` marks a complete checkpoint.
        """
        self.prefetcher.settle()  # a draw still running would change the replay's generator mid-save
        staging = ckpt.staging_dir(self.ckpt_dir)
        if distributed.is_main():
            ckpt.begin_save(self.ckpt_dir)
        distributed.barrier()
        self.replay.save(staging / ckpt.replay_dirname(self.rank))
        if self.rank > 0:
            ckpt.save_agent_state(
                staging / f"rank{self.rank}.pt",
                {
                    "rank": self.rank,
                    "rng": ckpt.rng_state(),
                    "counters": {"env_steps": self.env_steps, "episodes": self.episodes},
                    "state_digest": distributed.state_digest(self.agent.state_dict()),
                },
            )
        distributed.barrier()
        if distributed.is_main():
            self._save_agent(staging / "agent.pt")
            ckpt.commit(self.ckpt_dir)
        distributed.barrier()
        self.saved_step = self.env_steps
        return self.ckpt_dir

    def _save_agent(self, path: Path) -> None:
        self.logger.flush()  # the logs' sizes below include every row logged up to this checkpoint
        ckpt.save_agent_state(
            path,
            {
                "agent": self.agent.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.agent.optimizers().items()},
                "counters": {
                    "env_steps": self.env_steps,
                    "updates": self.updates,
                    "episodes": self.episodes,
                    "credit": self.credit,
                    "nonfinite_total": self.nonfinite_total,
                    "last_eval": self.last_eval,
                    "last_eval_step": self.last_eval_step,
                },
                "rng": ckpt.rng_state(),
                "config": to_dict(self.cfg),
                "num_actions": self.num_actions,
                "world_size": self.world,
                "logs": log_sizes(self.logdir),  # a resume cuts the logs back to these (aime.runtime.logger)
            },
        )

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
                problem = (
                    error
                    if isinstance(error, ValueError)
                    else ckpt.CheckpointError(
                        f"{self.ckpt_dir / 'agent.pt'} has no counters: not an agent checkpoint ({error!r})"
                    )
                )
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
                f"the same number of processes (torchrun --nproc_per_node ... x --nnodes ... = {saved_world})"
            )
        if payload.get("num_actions") != self.num_actions:
            raise ckpt.CheckpointError(
                f"checkpoint was made for {payload.get('num_actions')} actions, this environment has {self.num_actions}"
            )
        try:
            self.agent.load_state_dict(payload["agent"])
            for name, opt in self.agent.optimizers().items():
                opt.load_state_dict(payload["optimizers"][name])
        except (RuntimeError, KeyError, ValueError) as error:
            raise ckpt.CheckpointError(f"checkpoint does not fit this configuration: {error}") from error
        self.replay = ReplayBuffer.load(self.ckpt_dir / ckpt.replay_dirname(self.rank))
        self.resume_changes = ckpt.changed_settings(self.cfg, payload.get("config", {}), RESUME_KEYS)
        counters = payload["counters"]
        self.env_steps, self.updates = int(counters["env_steps"]), int(counters["updates"])
        self.saved_step = self.env_steps
        self.episodes, self.credit = int(counters["episodes"]), float(counters["credit"])
        self.nonfinite_total = int(counters["nonfinite_total"])
        # the last evaluation (checkpoints before these keys: none known): a resumed run that has
        # already evaluated this step does not again, and its summaries name it
        self.last_eval = float(counters.get("last_eval", float("nan")))
        self.last_eval_step = counters.get("last_eval_step")
        rng = payload["rng"]
        if self.rank > 0:
            own = ckpt.load_agent_state(self.ckpt_dir / f"rank{self.rank}.pt")
            if int(own["counters"]["env_steps"]) != self.env_steps:
                raise ckpt.CheckpointError(
                    f"rank{self.rank}.pt is at step {own['counters']['env_steps']}, agent.pt at {self.env_steps}: "
                    "the checkpoint is incomplete (interrupted while saving?)"
                )
            self.episodes, rng = int(own["counters"]["episodes"]), own["rng"]
        per_row = self.cfg.env.num_envs * self.world  # agent steps per replay row (one row per iteration)
        if self.replay.total_added * per_row != self.env_steps:
            raise ckpt.CheckpointError(
                f"{ckpt.replay_dirname(self.rank)} holds {self.replay.total_added * per_row} agent steps, "
                f"agent.pt counts {self.env_steps}: the checkpoint is incomplete (interrupted while saving?)"
            )
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
        if self.resume_changes:
            lines.append(f"resumed with {', '.join(self.resume_changes)} (kept by the next checkpoint)")
        if self.agent.compiled:  # the first update waits for torch.compile: say why nothing moves
            names = self.agent.compiled
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"torch.compile: {shown}; the first update compiles (minutes)")
        return "\n".join(lines)

    def hyperparameters(self) -> dict[str, Any]:
        """The flattened configuration as run: ``device``, ``train.precision`` and ``replay.prefetch``
        as resolved, not ``auto``."""
        return {
            **flatten(self.cfg),
            "device": str(self.device),
            "train.precision": self.precision.name,
            "replay.prefetch": "thread" if self.prefetcher.enabled else "none",
        }

    def run(self) -> dict[str, Any]:
        """Train until ``cfg.train.steps`` agent steps; returns a summary dict.

        Every exit (the end, SIGINT/SIGTERM, non-finite losses, a crash) prints the end summary
        (:meth:`end_summary`) on rank 0: counters, time, the last evaluation, the checkpoint and
        the command that continues the run.
        """
        cfg = self.cfg
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        start_time, start_steps = self.clock(), self.env_steps
        progress = Progress(
            cfg.train.steps,
            self.env_steps,
            cfg.train.warmup_steps,
            clock=self.clock,
            enabled=self.progress and distributed.is_main(),
            announce=self._print if distributed.is_main() else lambda line: None,
            wait_for_update=bool(self.agent.compiled),
        )
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
            self.prefetcher.close()
            progress.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            # the HPARAMS tab's metrics, as the session leaves them
            self.logger.scalars(
                {"hparams/eval_return": self.last_eval, "hparams/env_steps": self.env_steps}, self.env_steps
            )
            self.logger.close()
            self.env.close()
            elapsed = self.clock() - start_time
            # a collective only when every rank is known to be here (the normal end)
            episodes = self.episodes if outcome != "done" else int(distributed.all_reduce_scalar(self.episodes, "sum"))
            if distributed.is_main():
                self._print(self.end_summary(outcome, episodes, elapsed, start_steps))
        return {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "episodes": episodes,
            "eval_return": self.last_eval,
            "seconds": elapsed,
            "sps": (self.env_steps - start_steps) / max(elapsed, 1e-9),
            "nonfinite_updates": self.nonfinite_total,
            "checkpoint": str(self.ckpt_dir),
        }

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
        evaluation = (
            f"eval return {self.last_eval:.2f} (at step {self.last_eval_step:,})"
            if self.last_eval_step is not None
            else "no evaluation yet"
        )
        head = (
            f"{outcome}: {self.env_steps:,} agent steps, {self.updates:,} updates, {episodes:,} episodes in "
            f"{seconds:.0f} s ({rate:.1f} steps/s); {evaluation}"
        )
        if self.saved_step is None:
            return head + "\ncheckpoint: none written (nothing to resume)"
        launcher = f"torchrun --nproc_per_node={self.world}" if self.world > 1 else "python"
        command = f"{launcher} scripts/train_agent.py --resume {shlex.quote(str(self.logdir))}"
        if self.saved_step >= self.cfg.train.steps:  # finished: continuing needs a larger budget
            command += f" --steps {2 * max(self.cfg.train.steps, 1)}"
        return f"{head}\ncheckpoint: {self.ckpt_dir} (agent step {self.saved_step:,})\ncontinue: {command}"

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
            obs, reward, terminated, truncated, info = self.env.step(action)
            reward = reward.astype(np.float32)
            is_first, is_terminal = tracker.done.copy(), terminated.astype(bool)
            # charts/episodic_return is a game's score, also when a lost life ends an episode for learning
            for _, ret, length in tracker.step(reward, terminated, truncated, info.get("life_loss")):
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
            for batch in self.prefetcher.burst(updates):
                pending.append(self._train_once(batch))
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

    def _next_batch(self) -> dict[str, Any]:
        """One replay batch as tensors on the agent's device (the prefetcher's worker draws it)."""
        t = self.cfg.train
        return self.agent.to_tensors(self.replay.sample(t.batch_size, t.seq_len))

    def _train_once(self, batch: dict[str, Any]) -> dict[str, Any]:
        t = self.cfg.train
        metrics, finite = self.agent.train_step(batch, learn_actor=self.env_steps >= t.actor_start)
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
                f"{path}. Try a lower learning rate (--set train.model_lr=...) or check the inputs.",
                1,
                reason="non-finite losses",
            )
        return {}

    def _log_scalars(self, pending: list[dict[str, Any]], throughput: Throughput) -> None:
        """The interval's mean losses and its own throughput (not the run's average since start)."""
        values = mean_metrics(pending)
        sps, ups = throughput.read(self.env_steps, self.updates, self.clock())
        values.update(
            {
                "charts/SPS": sps,
                "charts/train_steps": self.updates,
                "charts/updates_per_second": ups,
                "charts/replay_size": len(self.replay),
                "charts/nonfinite_updates": self.nonfinite_total,
                **self.agent.learning_rates(),
            }
        )
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
        """``objects/...`` scalars against OCAtari's boxes (games that have them), see
        :mod:`aime.runtime.object_metrics`."""
        values = self._objects.scalars(self.agent.world_model, self.device)
        if values is not None:
            self.logger.scalars(values, self.env_steps)

    def _evaluate(self) -> None:
        e = self.cfg.eval
        # a sampled evaluation draws from torch's generator: fork it, so that evaluating (or not,
        # or how often) leaves the training run's random stream as it was
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            result = evaluate(
                self.agent, self.cfg, e.episodes, seed=self.cfg.seed + 10_000 + self.env_steps, greedy=e.greedy
            )
        if result.capped:
            self._print(
                f"eval at step {self.env_steps:,}: {result.capped} of {len(result.returns)} episodes hit "
                f"the cap of eval.max_steps={e.max_steps:,} agent steps (a stalling policy? e.g. one "
                "that never presses FIRE); they count with their return so far"
            )
        if result.returns:
            self.last_eval, self.last_eval_step = float(np.mean(result.returns)), self.env_steps
            self.logger.scalars(
                {
                    "eval/episodic_return": self.last_eval,
                    "eval/episodic_length": float(np.mean(result.lengths)),
                    "eval/episodic_return_std": float(np.std(result.returns)),
                    "eval/capped_episodes": result.capped,
                },
                self.env_steps,
            )
