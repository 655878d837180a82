"""Checkpoints that cannot run code, and that a crash cannot leave half-written.

A checkpoint directory (``<run>/checkpoint/``) holds ``agent.pt`` (network and optimiser state,
counters, RNG states, the configuration) and ``replay/`` (the replay buffer, see
:mod:`aime.runtime.replay`); under torchrun also ``replay_rank{r}/`` and ``rank{r}.pt``. Files are
read with ``torch.load(weights_only=True)`` only.

Saving is a transaction over generations of that directory. A save writes the whole new
generation into ``.checkpoint.new/`` beside it (replays first, ``agent.pt`` last, so a staged
``agent.pt`` means the generation is complete), then :func:`commit` swaps it in:
``checkpoint -> .checkpoint.old``, ``.checkpoint.new -> checkpoint``, and only then deletes the old
one. Whatever instant a ``kill -9`` hits, one complete generation survives, and
:func:`recover` (run before a resume) makes the newest complete one ``checkpoint/`` again and
deletes every partial or older generation and temp file.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

FORMAT_VERSION = 1
T = TypeVar("T")


def replay_dirname(rank: int) -> str:
    """A rank's replay folder inside ``checkpoint/``."""
    return "replay" if rank == 0 else f"replay_rank{rank}"


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit the run."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # the rename itself survives a power cut


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (renames, new files) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- generations of a checkpoint directory (see the module docstring) ---------------------------
def staging_dir(ckpt_dir: str | os.PathLike) -> Path:
    """Where the next generation of ``ckpt_dir`` is written before :func:`commit`."""
    ckpt_dir = Path(ckpt_dir)
    return ckpt_dir.with_name(f".{ckpt_dir.name}.new")


def retired_dir(ckpt_dir: str | os.PathLike) -> Path:
    """Where :func:`commit` moves the previous generation until the new one is in place."""
    ckpt_dir = Path(ckpt_dir)
    return ckpt_dir.with_name(f".{ckpt_dir.name}.old")


def is_complete(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a whole generation: its ``agent.pt`` is written last."""
    return (Path(directory) / "agent.pt").is_file()


def discard(directory: str | os.PathLike) -> None:
    """Delete a generation, ``agent.pt`` first: a deletion cut short never looks complete."""
    directory = Path(directory)
    (directory / "agent.pt").unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)


def begin_save(ckpt_dir: str | os.PathLike) -> Path:
    """An empty staging folder for the next generation of ``ckpt_dir`` (a save cut short may have
    left a partial one); every rank then writes its files into it."""
    staging = staging_dir(ckpt_dir)
    discard(staging)
    staging.mkdir(parents=True)
    return staging


def commit(ckpt_dir: str | os.PathLike) -> None:
    """Make the staged generation ``ckpt_dir``, then delete the previous one.

    The previous generation is moved aside, not deleted, until the new one has its name: at
    every instant one complete generation exists under one of the three names, which
    :func:`recover` resolves.
    """
    ckpt_dir = Path(ckpt_dir)
    staging, retired = staging_dir(ckpt_dir), retired_dir(ckpt_dir)
    if not is_complete(staging):
        raise CheckpointError(f"{staging} has no agent.pt: the staged checkpoint is incomplete")
    discard(retired)
    if ckpt_dir.exists():
        os.rename(ckpt_dir, retired)
    os.rename(staging, ckpt_dir)
    fsync_dir(ckpt_dir.parent)
    discard(retired)


def newest_complete(ckpt_dir: str | os.PathLike) -> Path | None:
    """The newest complete generation of ``ckpt_dir`` (staged, current, then retired), or None.

    Read-only: for tools that only load (evaluation), while :func:`recover` also repairs.
    """
    ckpt_dir = Path(ckpt_dir)
    for candidate in (staging_dir(ckpt_dir), ckpt_dir, retired_dir(ckpt_dir)):
        if is_complete(candidate):
            return candidate
    return None


def recover(ckpt_dir: str | os.PathLike) -> Path:
    """Make ``ckpt_dir`` the newest complete generation and delete the rest (before a resume).

    A complete staged generation was cut short only in its commit: finish it. A missing or
    incomplete ``ckpt_dir`` with a complete retired one was cut short between the two renames:
    move the retired one back. Partial generations and temp files are deleted. Raises
    :class:`CheckpointError` when no complete generation exists.
    """
    ckpt_dir = Path(ckpt_dir)
    staging, retired = staging_dir(ckpt_dir), retired_dir(ckpt_dir)
    if is_complete(staging):
        commit(ckpt_dir)
    elif not is_complete(ckpt_dir) and is_complete(retired):
        discard(ckpt_dir)
        os.rename(retired, ckpt_dir)
        fsync_dir(ckpt_dir.parent)
    discard(staging)
    discard(retired)
    if not is_complete(ckpt_dir):
        raise CheckpointError(f"no complete checkpoint in {ckpt_dir.parent} (expected {ckpt_dir}/agent.pt)")
    remove_temp_files(ckpt_dir)
    return ckpt_dir


def remove_temp_files(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Delete the temp files and folders a cut-short write leaves in ``ckpt_dir`` (``.agent.pt.*``,
    ``.replay.*``, ``.rank1.pt.*``: every hidden entry, since checkpoints write no other)."""
    removed = []
    for entry in Path(ckpt_dir).iterdir():
        if entry.name.startswith("."):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch RNG states."""
    state = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": pos,
        "has_gauss": has_gauss,
        "cached": cached,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_agent_state(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (state dicts, counters, config dict) with a format version."""
    atomic_torch_save({"format_version": FORMAT_VERSION, **payload}, path)


def load_agent_state(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_agent_state`, safely (no code execution).

    ``mmap=True`` maps the tensors instead of reading them (cheap when only counters or the
    configuration are needed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles: the error below says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # a truncated or foreign file: report it, never execute it
        raise CheckpointError(f"{path} is not a readable AIME checkpoint: {_load_problem(path, error)}") from error
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, expected {FORMAT_VERSION}")
    return payload


def _load_problem(path: Path, error: Exception) -> str:
    """What is wrong with a file ``torch.load`` refused, in one line.

    torch's own messages run over many lines, and for a pickle it advises loading the file
    unsafely; that advice is never passed on: such a file is not an AIME checkpoint, and loading it
    could run code. Checkpoints are zip archives (what ``torch.save`` writes), so the first bytes
    tell a foreign file from a damaged archive.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(4)
    except OSError as read_error:
        return read_error.strerror or str(read_error)
    if not header or isinstance(error, EOFError):
        return "the file is empty or cut short"
    if header != b"PK\x03\x04":
        if header[0] == 0x80:  # a pickle's protocol opcode
            return (
                "it is a plain pickle, not an archive written by torch.save, and is refused (unpickling can run code)"
            )
        return "it is not an archive written by torch.save (damaged, or another kind of file)"
    if isinstance(error, pickle.UnpicklingError):
        return (
            "it holds Python objects beyond tensors and plain values, which a safe load refuses "
            "(not an AIME checkpoint, or altered)"
        )
    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return f"the archive is damaged or cut short ({first.split('. ')[0].strip().rstrip('.')})"


def find_checkpoint(path: str | os.PathLike) -> Path:
    """``agent.pt`` from a run directory, a checkpoint directory or the file itself; from a
    directory, the newest complete generation (see :func:`newest_complete`)."""
    path = Path(path)
    if path.is_file():
        return path
    for ckpt_dir in (path / "checkpoint", path):
        found = newest_complete(ckpt_dir)
        if found is not None:
            return found / "agent.pt"
    raise CheckpointError(f"no checkpoint found at {path} (expected a run directory, its checkpoint/ or agent.pt)")


def read_newest(path: str | os.PathLike, read: Callable[[Path], T], attempts: int = 3) -> T:
    """``read(find_checkpoint(path))``, tried again when a training run replaced its checkpoint
    meanwhile.

    A run saves by renaming a new folder into place, so a reader may find files vanish or change
    shape under it. Such a failure (``CheckpointError``, ``OSError`` or ``ValueError``) is retried
    with the new generation, at most ``attempts`` times; the same failure on an unchanged folder is
    a real problem and is raised at once.
    """
    for attempt in range(attempts):
        checkpoint = find_checkpoint(path)
        generation = checkpoint.parent.stat().st_ino
        try:
            return read(checkpoint)
        except (CheckpointError, OSError, ValueError):
            if attempt == attempts - 1 or find_checkpoint(path).parent.stat().st_ino == generation:
                raise
    raise ValueError(f"read_newest: attempts must be >= 1, got {attempts}")


# model switches added after checkpoints were written, with the behaviour those checkpoints had
_MODEL_KEYS_ADDED_LATER = {
    "readout_position": False,
    "decoder_attention": False,
    "slot_position": "learned",
    "attention_detail": False,
    "object_policy": False,
    "slot_seeds": "state",
    "attention_grad": "world",
    "slot_iters": 3,
}


def config_of(payload: dict[str, Any]):
    """The :class:`aime.config.Config` a checkpoint payload was written with."""
    from aime.config import Config, apply_mapping

    cfg = Config()
    apply_mapping(cfg, payload["config"], where="checkpoint config")
    if "posterior_map" not in payload["config"].get("model", {}):
        # written before the posterior's map had a choice: the seed's softmax, untargeted, unweighted
        cfg.model.posterior_map, cfg.model.attention_target, cfg.model.precision_strength = "softmax", "none", 0.0
    for key, before in _MODEL_KEYS_ADDED_LATER.items():
        if key not in payload["config"].get("model", {}):
            setattr(cfg.model, key, before)
    return cfg


def saved_config(path: str | os.PathLike) -> dict[str, Any]:
    """The configuration mapping stored with the checkpoint at ``path`` (see :func:`find_checkpoint`),
    as written, without reading its tensors."""
    file = find_checkpoint(path)
    config = load_agent_state(file, mmap=True).get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{file} holds no configuration: not an agent checkpoint")
    return config


def config_differences(cfg, saved: dict[str, Any], ignore: tuple[str, ...] = ("train.steps",)) -> list[str]:
    """``key: value in cfg, value saved`` for each leaf of ``saved`` (a checkpoint's configuration
    mapping) that ``cfg`` (a :class:`aime.config.Config`) sets otherwise.

    Only the keys the checkpoint holds are compared: one written before a key existed says nothing
    about it.
    """
    from aime.config import flatten

    mine = flatten(cfg)
    out = []
    for key, value in _leaves(saved):
        if key in ignore or key not in mine:
            continue
        if mine[key] != value and not (isinstance(value, list) and list(mine[key]) == value):
            out.append(f"{key}: {mine[key]!r}, saved {value!r}")
    return out


def changed_settings(cfg, saved: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """``key=value`` (``cfg``'s value) for each of ``keys`` that ``saved`` (a checkpoint's
    configuration mapping) holds with another value: what a resumed session changed."""
    from aime.config import flatten

    mine, before = flatten(cfg), dict(_leaves(saved))
    return [f"{key}={mine[key]}" for key in keys if key in before and before[key] != mine[key]]


def _leaves(mapping: dict[str, Any], prefix: str = ""):
    """``(dotted key, value)`` for every leaf of a nested mapping."""
    for name, value in mapping.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def load_run_config(path: str | os.PathLike):
    """The configuration of the run saved at ``path`` (see :func:`find_checkpoint`), without its networks."""
    return config_of(load_agent_state(find_checkpoint(path)))


def load_agent(path: str | os.PathLike, device: str = "auto"):
    """Rebuild the agent saved at ``path`` (see :func:`find_checkpoint`): ``(agent, config)``."""
    from aime.agent.agent import Agent
    from aime.runtime.device import resolve_device

    payload = load_agent_state(find_checkpoint(path))
    cfg = config_of(payload)
    agent = Agent(cfg, int(payload["num_actions"]), resolve_device(device))
    try:
        agent.load_state_dict(payload["agent"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint does not fit its own configuration: {error}") from error
    return agent, cfg


def load_agent_and_replay(run: str | os.PathLike, device: str = "cpu"):
    """``(agent, config, replay)`` from a run's newest checkpoint, read again if a training run
    replaces it meanwhile (:func:`read_newest`): for the scripts that study a run as it stands."""
    from aime.runtime.replay import ReplayBuffer

    def read(checkpoint: Path):
        agent, cfg = load_agent(checkpoint, device)
        return agent, cfg, ReplayBuffer.load(checkpoint.parent / replay_dirname(0))

    return read_newest(run, read)


def save_world_model(path: str | os.PathLike, model, cfg, num_actions: int) -> None:
    """Write a world model alone (``scripts/train_world_model.py``), loadable by :func:`load_world_model`."""
    from aime.config import to_dict

    save_agent_state(path, {"config": to_dict(cfg), "num_actions": int(num_actions), "world_model": model.state_dict()})


def load_world_model(path: str | os.PathLike, device: str = "auto"):
    """The world model of an agent run (see :func:`find_checkpoint`) or of a file written by
    :func:`save_world_model`: ``(VRNN, config)``."""
    from aime.runtime.device import resolve_device
    from aime.world_model.vrnn import VRNN

    path = Path(path)
    if path.is_file() and "world_model" in (payload := load_agent_state(path)):
        cfg = config_of(payload)
        model = VRNN.from_config(cfg.model, int(payload["num_actions"]), cfg.train)
        try:
            model.load_state_dict(payload["world_model"])
        except RuntimeError as error:
            raise CheckpointError(f"world model does not fit its own configuration: {error}") from error
        return model.to(resolve_device(device)), cfg
    agent, cfg = load_agent(path, device)
    return agent.world_model, cfg
