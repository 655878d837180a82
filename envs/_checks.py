"""Boundary checks shared by the Atari and Catch environments (seeds, actions, reset options)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Seeds end up in C++ ``int``s inside ALE, so they are capped where those overflow.
MAX_SEED = 2**31 - 1


def check_seed(seed: Any, name: str = "seed") -> None:
    """Raise ``ValueError`` unless ``seed`` is an int in ``[0, MAX_SEED]``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be None or an int in [0, {MAX_SEED}], got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be None or an int in [0, {MAX_SEED}], got {seed}")


def vector_seeds(seed: Any, count: int) -> np.ndarray | None:
    """Per-sub-environment seeds of a vector reset, gymnasium style.

    ``None`` -> ``None`` (no reseeding); an int ``s`` -> ``[s, s + 1, ..., s + count - 1]``; a
    sequence of ``count`` ints or ``None``s -> those (``-1`` marks "do not reseed").

    Returns:
        ``None`` or an int64 array of shape ``[count]``.
    """
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        check_seed(seed)
        if int(seed) + count - 1 > MAX_SEED:
            raise ValueError(f"seed + num_envs - 1 must be <= {MAX_SEED}, got seed={seed}, num_envs={count}")
        return np.arange(int(seed), int(seed) + count, dtype=np.int64)
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, str):
        if len(seed) != count:
            raise ValueError(f"seed must hold one entry per sub-environment reset ({count}), got {len(seed)}")
        out = np.full(count, -1, dtype=np.int64)
        for i, s in enumerate(seed):  # a handful of seeds, once per reset
            if s is not None:
                check_seed(s, f"seed[{i}]")
                out[i] = int(s)
        return out
    raise ValueError(f"seed must be None, an int or a sequence of ints/None, got {type(seed).__name__}")


def reset_mask(options: dict[str, Any] | None, num_envs: int) -> np.ndarray | None:
    """The ``reset_mask`` of vector reset ``options`` (bool ``[num_envs]``) or ``None`` for all.

    Raises:
        ValueError: an option other than ``reset_mask``, or a mask of the wrong shape or dtype.
    """
    if not options:
        return None
    unknown = set(options) - {"reset_mask"}
    if unknown:
        raise ValueError(f"reset options accept only 'reset_mask', got {sorted(unknown)}")
    mask = options["reset_mask"]
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (num_envs,):
        got = f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}"
        raise ValueError(f"reset_mask must be a bool numpy array of shape ({num_envs},), got {got}")
    return mask


def check_actions(actions: Any, num_envs: int, num_actions: int) -> np.ndarray:
    """Validate a batch of discrete actions.

    Returns:
        int64 array ``[num_envs]`` with values in ``[0, num_actions)``.
    """
    a = np.asarray(actions)
    if a.shape != (num_envs,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be integers of shape ({num_envs},), got {a.dtype} {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= num_actions):
        raise ValueError(f"actions must lie in [0, {num_actions - 1}], got min {a.min()} max {a.max()}")
    return a.astype(np.int64)


def check_action(action: Any, num_actions: int) -> int:
    """Validate one discrete action (a Python or numpy integer, or a 0-d integer array)."""
    a = np.asarray(action)
    if a.shape != () or not np.issubdtype(a.dtype, np.integer) or isinstance(action, (bool, np.bool_)):
        raise ValueError(f"action must be an int in [0, {num_actions - 1}], got {action!r}")
    if not 0 <= int(a) < num_actions:
        raise ValueError(f"action must be an int in [0, {num_actions - 1}], got {int(a)}")
    return int(a)


def check_num_envs(num_envs: Any) -> int:
    """Raise ``ValueError`` unless ``num_envs`` is an int >= 1."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    return int(num_envs)
