"""Checkpoints that cannot run code: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint directory holds ``agent.pt`` (network and optimiser state, counters, RNG states, the
configuration) and ``replay/`` (the replay buffer, see :mod:`aime.runtime.replay`). The replay is
written first and ``agent.pt`` last, each atomically (temp + rename), so ``agent.pt`` always
describes a complete checkpoint.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1


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


def rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch RNG states."""
    state = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "cached": cached}


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


def load_agent_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_agent_state`, safely (no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: report it, never execute it
        raise CheckpointError(f"{path} is not a readable AIME checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, expected {FORMAT_VERSION}")
    return payload


def find_checkpoint(path: str | os.PathLike) -> Path:
    """``agent.pt`` from a run directory, a checkpoint directory or the file itself."""
    path = Path(path)
    for candidate in (path, path / "agent.pt", path / "checkpoint" / "agent.pt"):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"no checkpoint found at {path} (expected a run directory, its checkpoint/ or agent.pt)")


def _config_of(payload: dict[str, Any]):
    """The :class:`aime.config.Config` a checkpoint payload was written with."""
    from aime.config import Config, apply_mapping

    cfg = Config()
    apply_mapping(cfg, payload["config"], where="checkpoint config")
    if "posterior_map" not in payload["config"].get("model", {}):
        # written before the posterior's map had a choice: the seed's softmax, untargeted, unweighted
        cfg.model.posterior_map, cfg.model.attention_target, cfg.model.precision_strength = "softmax", "none", 0.0
    return cfg


def load_run_config(path: str | os.PathLike):
    """The configuration of the run saved at ``path`` (see :func:`find_checkpoint`), without its networks."""
    return _config_of(load_agent_state(find_checkpoint(path)))


def load_agent(path: str | os.PathLike, device: str = "auto"):
    """Rebuild the agent saved at ``path`` (see :func:`find_checkpoint`): ``(agent, config)``."""
    from aime.agent.agent import Agent, resolve_device

    payload = load_agent_state(find_checkpoint(path))
    cfg = _config_of(payload)
    agent = Agent(cfg, int(payload["num_actions"]), resolve_device(device))
    try:
        agent.load_state_dict(payload["agent"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint does not fit its own configuration: {error}") from error
    return agent, cfg


def save_world_model(path: str | os.PathLike, model, cfg, num_actions: int) -> None:
    """Write a world model alone (``scripts/train_world_model.py``), loadable by :func:`load_world_model`."""
    from aime.config import to_dict

    save_agent_state(path, {"config": to_dict(cfg), "num_actions": int(num_actions),
                            "world_model": model.state_dict()})


def load_world_model(path: str | os.PathLike, device: str = "auto"):
    """The world model of an agent run (see :func:`find_checkpoint`) or of a file written by
    :func:`save_world_model`: ``(VRNN, config)``."""
    from aime.agent.agent import resolve_device
    from aime.world_model.vrnn import VRNN

    path = Path(path)
    if path.is_file() and "world_model" in (payload := load_agent_state(path)):
        cfg = _config_of(payload)
        model = VRNN.from_config(cfg.model, int(payload["num_actions"]), cfg.train)
        try:
            model.load_state_dict(payload["world_model"])
        except RuntimeError as error:
            raise CheckpointError(f"world model does not fit its own configuration: {error}") from error
        return model.to(resolve_device(device)), cfg
    agent, cfg = load_agent(path, device)
    return agent.world_model, cfg
