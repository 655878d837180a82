"""Runtime: the only place with I/O and processes (replay, the training loop, logging, checkpoints,
distributed training, recordings, plots).

The main names are re-exported here and imported on first use (``aime.runtime.Trainer``), so that
importing one light module such as ``aime.runtime.denormals`` does not pull in the training loop,
TensorBoard and the environments.

- ``replay``: ``ReplayBuffer`` (uint8 sequences, ``[B, T]`` windows, saved with checkpoints),
  ``random_replay`` (random steps, for tests and benchmarks);
- ``loop``: ``Trainer`` (collect -> train -> evaluate -> log -> checkpoint); ``stopping``:
  ``TrainingStopped``; ``schedule``: ``updates_due`` (updates per environment step);
- ``evaluation``: ``evaluate``, ``EvalResult``; ``environments``: ``env_options``, ``EpisodeTracker``;
- ``progress``: the progress bar and ETA; ``metrics``: interval means and throughput;
  ``object_metrics``: the loop's ``objects/...`` scalars;
- ``seeding``: ``seed_everything``, ``rank_seed``; ``run_dir``: ``config_from_checkpoint`` (a run's
  ``config.yaml``);
- ``checkpoint``: crash-safe saves, ``load_agent``, ``load_world_model``, ``find_checkpoint``,
  ``replay_dirname``;
- ``logger``: ``Logger`` (TensorBoard + ``metrics.jsonl``); ``summaries``: image summaries;
- ``recording``: ``EpisodeRecorder`` (evaluation frames and videos); ``plots``: learning curves;
- ``distributed``: DDP helpers; ``allocator``, ``denormals``: process-wide CPU speed settings;
- ``device``: ``resolve_device``, native bf16 detection and ``train.precision`` (``resolve_precision``).
- ``extras``: the scripts' check for optional packages at start (``require``: one line, exit 2).
"""

from __future__ import annotations

from aime._lazy import lazy_exports

_EXPORTS = {
    "ReplayBuffer": "aime.runtime.replay",
    "random_replay": "aime.runtime.replay",
    "Trainer": "aime.runtime.loop",
    "TrainingStopped": "aime.runtime.stopping",
    "EvalResult": "aime.runtime.evaluation",
    "evaluate": "aime.runtime.evaluation",
    "CheckpointError": "aime.runtime.checkpoint",
    "find_checkpoint": "aime.runtime.checkpoint",
    "load_agent": "aime.runtime.checkpoint",
    "load_world_model": "aime.runtime.checkpoint",
    "save_world_model": "aime.runtime.checkpoint",
    "Logger": "aime.runtime.logger",
    "image_summaries": "aime.runtime.summaries",
    "EpisodeRecorder": "aime.runtime.recording",
    "retain_freed_memory": "aime.runtime.allocator",
    "flush_denormals": "aime.runtime.denormals",
    "resolve_device": "aime.runtime.device",
    "resolve_precision": "aime.runtime.device",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
