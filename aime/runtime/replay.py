"""Sequence replay: frames stored once as ``uint8``, uniform ``[B, T]`` windows, exact save/load.

Layout. The buffer holds ``num_streams`` parallel streams (one per environment of a vector env),
each a ring of ``length = capacity // num_streams`` rows. Row ``t`` of a stream is one agent step::

    obs[t]          uint8 [C, H, W]   the observation o_t
    action[t]       int64             the action taken at o_t (ignored by the env if o_t is terminal)
    reward[t]       float32           the reward received on arriving at o_t (0 at a first step)
    is_first[t]     bool              o_t is the first observation of an episode
    is_terminal[t]  bool              o_t ends the episode by termination (not by truncation)

Every frame is stored exactly once; overlapping windows are views of the same rows, so 100k frames
of 84x84 RGB take ``100_000 * 21_182`` bytes (2.12 GB, :meth:`ReplayBuffer.nbytes`).

Sampling draws a stream and a start uniformly among all windows of length ``T`` that lie inside the
written part of the stream and do not cross its write head (the boundary between the newest and
the oldest row of a full ring, where time is not contiguous). A window may cross episode
boundaries; ``is_first`` marks them and the world model resets its state there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FIELDS = ("obs", "action", "reward", "is_first", "is_terminal")
FORMAT_VERSION = 1


class ReplayBuffer:
    """A ring of agent steps per environment stream, sampled as ``[B, T]`` windows.

    Args:
        capacity: rows held in total over all streams (each stream holds ``capacity // num_streams``).
        num_streams: parallel environment streams written in lockstep by :meth:`add`.
        obs_shape: shape of one observation, ``(3, 84, 84)`` for the Atari protocol.
        seed: seed of the sampling generator (its state is saved with the buffer).
    """

    def __init__(
        self,
        capacity: int,
        num_streams: int = 1,
        obs_shape: tuple[int, ...] = (3, 84, 84),
        seed: int | None = 0,
    ) -> None:
        if num_streams < 1:
            raise ValueError(f"num_streams must be >= 1, got {num_streams}")
        if capacity < num_streams:
            raise ValueError(f"capacity ({capacity}) must be >= num_streams ({num_streams})")
        self.capacity = int(capacity)
        self.num_streams = int(num_streams)
        self.length = self.capacity // self.num_streams
        self.obs_shape = tuple(int(s) for s in obs_shape)
        S, L = self.num_streams, self.length
        # np.zeros maps pages lazily: an unfilled buffer costs no resident memory.
        self.obs = np.zeros((S, L, *self.obs_shape), dtype=np.uint8)
        self.action = np.zeros((S, L), dtype=np.int64)
        self.reward = np.zeros((S, L), dtype=np.float32)
        self.is_first = np.zeros((S, L), dtype=bool)
        self.is_terminal = np.zeros((S, L), dtype=bool)
        self.head = 0  # next row to write, the same for every stream
        self.filled = 0  # rows written per stream, at most L
        self.total_added = 0  # rows ever written per stream
        self.rng = np.random.default_rng(seed)

    # -- writing -------------------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        is_first: np.ndarray,
        is_terminal: np.ndarray,
    ) -> None:
        """Append one agent step to every stream.

        Args:
            obs: ``uint8 [S, C, H, W]``.
            action, reward, is_first, is_terminal: ``[S]`` each.
        """
        S = self.num_streams
        obs = np.asarray(obs)
        if obs.shape != (S, *self.obs_shape) or obs.dtype != np.uint8:
            raise ValueError(f"obs: expected uint8 {(S, *self.obs_shape)}, got {obs.dtype} {tuple(obs.shape)}")
        columns = {"action": action, "reward": reward, "is_first": is_first, "is_terminal": is_terminal}
        for name, value in columns.items():
            if np.shape(value) != (S,):
                raise ValueError(f"{name}: expected shape ({S},), got {np.shape(value)}")
        t = self.head
        self.obs[:, t] = obs
        self.action[:, t] = action
        self.reward[:, t] = reward
        self.is_first[:, t] = is_first
        self.is_terminal[:, t] = is_terminal
        self.head = (t + 1) % self.length
        self.filled = min(self.filled + 1, self.length)
        self.total_added += 1

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Rows held over all streams."""
        return self.filled * self.num_streams

    def num_windows(self, seq_len: int) -> int:
        """Windows of length ``seq_len`` available per stream."""
        return max(self.filled - seq_len + 1, 0)

    def can_sample(self, seq_len: int) -> bool:
        return self.num_windows(seq_len) > 0

    def newest(self, rows: int) -> dict[str, np.ndarray]:
        """The last ``rows`` rows of every stream in time order (``[S, rows, ...]`` copies, the fields
        of :meth:`sample`): what the newest policy played.

        Raises:
            ValueError: ``rows`` is not in ``[1, filled]``.
        """
        if not 1 <= rows <= self.filled:
            raise ValueError(f"newest: rows must be in [1, {self.filled}] (rows written per stream), got {rows}")
        index = (self.head - rows + np.arange(rows)) % self.length
        return self.gather(np.arange(self.num_streams), np.broadcast_to(index, (self.num_streams, rows)))

    def sample_indices(self, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform window positions: ``(stream [B], rows [B, T])`` physical indices."""
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        windows = self.num_windows(seq_len)
        if windows == 0:
            raise ValueError(f"cannot sample windows of length {seq_len}: each stream holds {self.filled} rows")
        stream = self.rng.integers(0, self.num_streams, size=batch_size)
        start = self.rng.integers(0, windows, size=batch_size)  # logical: 0 is the oldest row
        oldest = self.head if self.filled == self.length else 0
        rows = (oldest + start[:, None] + np.arange(seq_len)[None, :]) % self.length
        return stream, rows

    def gather(self, stream: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The fields at ``stream [B]`` and ``rows [B, T]``: obs ``uint8 [B, T, C, H, W]``, others ``[B, T]``."""
        s = stream[:, None]
        return {name: getattr(self, name)[s, rows] for name in FIELDS}

    def sample(self, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
        """A batch of ``[B, T]`` windows drawn uniformly (see the module docstring)."""
        return self.gather(*self.sample_indices(batch_size, seq_len))

    def nbytes(self) -> int:
        """Bytes held by the arrays at full capacity."""
        return sum(getattr(self, name).nbytes for name in FIELDS)

    def bytes_per_frame(self) -> float:
        return self.nbytes() / (self.num_streams * self.length)

    # -- persistence ---------------------------------------------------------------------------
    def state(self) -> dict:
        """Counters, shape and sampling-generator state (JSON-serialisable)."""
        return {
            "format_version": FORMAT_VERSION,
            "capacity": self.capacity,
            "num_streams": self.num_streams,
            "obs_shape": list(self.obs_shape),
            "head": self.head,
            "filled": self.filled,
            "total_added": self.total_added,
            "rng": self.rng.bit_generator.state,
        }

    def save(self, directory: str | os.PathLike) -> None:
        """Write the buffer to ``directory`` atomically (a temp folder renamed into place).

        Only the written rows are stored, in physical order, so a resumed run samples exactly
        what the interrupted one would have. Every file is flushed to disk before the rename, so
        the folder, once it has its name, is whole (checkpoints rely on it, see
        :mod:`aime.runtime.checkpoint`).
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            for name in FIELDS:
                with open(tmp / f"{name}.npy", "wb") as f:
                    np.save(f, getattr(self, name)[:, : self.filled])
                    _flush(f)
            with open(tmp / "state.json", "w") as f:
                f.write(json.dumps(self.state()))
                _flush(f)
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                directory.rename(old)
                tmp.rename(directory)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ReplayBuffer:
        """Read a buffer written by :meth:`save`.

        A missing, damaged or inconsistent folder raises ``ValueError`` with one line naming the
        file and what is wrong with it.
        """
        directory = Path(directory)
        meta = _read_state(directory)
        try:
            buffer = cls(meta["capacity"], meta["num_streams"], tuple(meta["obs_shape"]), seed=None)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{directory}/state.json: impossible buffer shape: {error}") from error
        buffer._restore(directory, meta)
        return buffer

    def _restore(self, directory: Path, meta: Mapping) -> None:
        filled, head, total = int(meta["filled"]), int(meta["head"]), int(meta["total_added"])
        # the counters of a ring written by add() follow from how many rows it was ever given
        if not (total >= 0 and filled == min(total, self.length) and head == total % self.length):
            raise ValueError(
                f"{directory}/state.json: inconsistent counters filled={filled}, head={head}, "
                f"total_added={total} for {self.length} rows per stream"
            )
        for name in FIELDS:
            data = _read_array(directory / f"{name}.npy")
            target = getattr(self, name)
            expected = (self.num_streams, filled, *target.shape[2:])
            if data.shape != expected or data.dtype != target.dtype:
                raise ValueError(
                    f"{directory}/{name}.npy: expected {target.dtype} {expected}, got {data.dtype} {tuple(data.shape)}"
                )
            target[:, :filled] = data
        self.head, self.filled, self.total_added = head, filled, total
        try:
            self.rng.bit_generator.state = meta["rng"]
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"{directory}/state.json: unusable sampling generator state ({error})") from error


# the keys of state.json and the types they must have (bool is not accepted as an int)
STATE_KEYS = {
    "format_version": int,
    "capacity": int,
    "num_streams": int,
    "obs_shape": list,
    "head": int,
    "filled": int,
    "total_added": int,
    "rng": dict,
}


def random_replay(
    rows: int,
    streams: int = 2,
    num_actions: int = 3,
    obs_shape: tuple[int, ...] = (3, 84, 84),
    seed: int = 0,
    capacity: int | None = None,
) -> ReplayBuffer:
    """A buffer of ``rows`` random steps in each of ``streams`` streams, for tests and benchmarks.

    Frames ``uint8 [streams, *obs_shape]``, actions in ``[0, num_actions)`` and normal rewards are
    drawn from ``np.random.default_rng(seed)`` step by step (frame, action, reward); row 0 starts
    every episode and none ends. ``capacity`` defaults to ``rows * streams`` (no row overwritten);
    the buffer samples with ``seed`` too.
    """
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(capacity or rows * streams, streams, obs_shape, seed=seed)
    for t in range(rows):
        buffer.add(
            rng.integers(0, 256, (streams, *obs_shape), dtype=np.uint8),
            rng.integers(0, num_actions, streams),
            rng.normal(size=streams),
            np.full(streams, t == 0),
            np.zeros(streams, bool),
        )
    return buffer


def _flush(f) -> None:
    """Push a file's bytes to disk (a crash after the folder's rename must not find it empty)."""
    f.flush()
    os.fsync(f.fileno())


def _read_state(directory: Path) -> dict:
    """``state.json`` of a saved buffer, with every key present and of its type."""
    path = directory / "state.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ValueError(f"{directory} is not a saved replay buffer: it has no state.json") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is damaged: {error}") from error
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is damaged: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{directory}: replay format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    for key, kind in STATE_KEYS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ValueError(f"{path} is damaged: {key!r} must be a {kind.__name__}, got {meta.get(key)!r}")
    return meta


def _read_array(path: Path) -> np.ndarray:
    """One ``.npy`` file, never unpickled; any damage is one ``ValueError`` line naming the file
    (numpy's own advice for a pickle, to load it unsafely, is not passed on)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except FileNotFoundError as error:
        raise ValueError(f"{path} is missing") from error
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from error
    if not magic:  # np.load would raise EOFError, which names nothing
        raise ValueError(f"{path} is empty")
    if magic != b"\x93NUMPY":
        raise ValueError(f"{path} is damaged: not a .npy array file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        if "pickle" in str(error):  # an object array: refused, never unpickled
            raise ValueError(f"{path} is damaged: it holds Python objects, not a plain array") from error
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ValueError(f"{path} is damaged: {first}") from error
