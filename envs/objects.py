"""Ground-truth object boxes from the emulator's RAM (OCAtari), aligned with the 84x84 observations.

OCAtari (``ocatari==2.2.1``) reads the positions of a game's objects from the Atari's 128 bytes of
RAM; its per-game modules ``ocatari/ram/<game>.py`` give boxes ``(x, y, w, h)`` in the raw 210x160
frame. This module labels frames played under exactly the project's Atari protocol (``envs.atari``)
with those boxes mapped into the ``size x size`` observation, e.g. to check whether an attention
map looks at the ball.

Why the RAM modules are imported on their own. ``import ocatari`` runs ``ocatari/__init__.py``, which
imports ``ocatari.core`` and with it gymnasium wrappers, OpenCV, pygame, termcolor and (through
``ocatari/ram/__init__.py``) every game module and the vision code; and the package's metadata
pins ``numpy<2`` and GUI packages. None of that is needed to turn a RAM vector into boxes: the game
modules of most games need only numpy, the standard library and their siblings
``game_objects.py`` and ``_helper_methods.py`` (relative imports). So ocatari is installed with
``pip install --no-deps ocatari==2.2.1`` (``make install`` does this), its folder is located with
``importlib.util.find_spec("ocatari")`` (which does not execute the package) and one game module
is imported as a submodule of a synthetic package ``_ocatari_ram`` whose ``__path__`` is OCAtari's
``ram`` folder: neither ``ocatari/__init__.py`` nor ``ocatari/ram/__init__.py`` runs, and
``ocatari`` never appears in ``sys.modules``. Game modules that import more (``termcolor``, or
OCAtari's vision code through ``ram/utils.py``: e.g. space_invaders, amidar, qbert) are found by
reading their import statements and refused with a ``ValueError``.

How OCAtari itself calls the modules (``ocatari/core.py``, ``ocatari/ram/extract_ram_info.py``),
which this module follows: ``_init_objects_ram(hud)`` at every reset, then
``_detect_objects_ram(objects, ale.getRAM(), hud)`` (after ``_save_prev()`` on each object) once
after the reset and once after every agent step, i.e. on the RAM after the step's last emulator
frame, not after every frame. The objects are updated in place; an absent object is replaced by a
falsy ``NoObject``. The RAM is passed as ``uint8``, as OCAtari does (some modules rely on its
wrap-around arithmetic; numpy's overflow warnings for it are silenced).

Timing and alignment, measured on raw frames (RAM read after every frame; random play, 2,000
frames per game): the RAM read after frame ``f`` describes the objects drawn in frame ``f`` (the
Breakout ball's pixels lie inside the box of the same frame's RAM in 100% of frames, in ~0.1% with
the RAM of the frame before or after; the Pong ball in 87% exactly, the rest one row off). So the
boxes of a step belong to its last frame, the newer of the two frames that the observation
max-pools; a fast object also shows its copy from the frame before, up to a few pixels behind
the box. The alignment on 84x84 observations is measured in ``tests/envs/test_objects.py``.

Games and classes (``OBJECT_CLASSES``): Breakout (ball, paddle), Pong (ball, player, enemy) and
Freeway (the agent's chicken, the left one). Freeway rather than Boxing: OCAtari's boxers have a
fixed 14x46 box that leaves out the arms (on raw frames 88-91% of a boxer's pixels lie in its box,
all of them in no frame), while all the chicken's pixels lie in its box dilated by 2 px at 84x84 in
~97% of frames. The ball is absent (``visible`` False) in Breakout after a lost life until FIRE is
pressed, and in Pong between points. HUD objects (scores, lives) are not reported.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from ale_py import Action, ALEInterface, LoggerMode, roms

__all__ = [
    "OBJECT_CLASSES",
    "ObjectExtractor",
    "load_ram_module",
    "raw_to_obs_boxes",
    "record_objects",
    "supported_games",
]

_PACKAGE = "_ocatari_ram"
_INSTALL_HINT = "install it with `pip install --no-deps ocatari==2.2.1` (or run `make install`)"

# Files of ocatari/ram/ that are not game modules.
_NOT_GAMES = {"__init__", "_helper_methods", "extract_ram_info", "game_objects", "utils"}
# The sibling modules a game module may import (relative imports resolved inside ``_ocatari_ram``).
_SIBLINGS = {"game_objects", "_helper_methods"}

OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "breakout": ("ball", "paddle"),
    "pong": ("ball", "player", "enemy"),
    "freeway": ("chicken",),
}
"""The object classes reported per game (ale-py ROM id -> names), one box per class."""

# class name -> OCAtari category (the first object of that category in the list is reported)
_CATEGORIES: dict[str, dict[str, str]] = {
    "breakout": {"ball": "Ball", "paddle": "Player"},
    "pong": {"ball": "Ball", "player": "Player", "enemy": "Enemy"},
    "freeway": {"chicken": "Chicken"},
}

RAW_HEIGHT, RAW_WIDTH = 210, 160


def _ram_dir() -> str:
    """The installed ``ocatari/ram`` folder, found without importing ``ocatari``."""
    try:
        spec = importlib.util.find_spec("ocatari")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"ocatari is not installed: {_INSTALL_HINT}", name="ocatari")
    for root in spec.submodule_search_locations:
        ram = os.path.join(root, "ram")
        if os.path.isfile(os.path.join(ram, "game_objects.py")):
            return ram
    raise ModuleNotFoundError(f"ocatari is installed without its ram/ modules: {_INSTALL_HINT}", name="ocatari")


@functools.cache
def _module_names(ram_dir: str) -> frozenset[str]:
    return frozenset(
        f[:-3]
        for f in os.listdir(ram_dir)
        if f.endswith(".py") and f[:-3] not in _NOT_GAMES and not f[:-3].endswith("_old")
    )


@functools.cache
def _foreign_imports(ram_dir: str, name: str) -> tuple[str, ...]:
    """The imports of ``ram/<name>.py`` beyond numpy, the standard library and its two siblings."""
    with open(os.path.join(ram_dir, f"{name}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    foreign = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
            foreign += [t for t in tops if t != "numpy" and t not in sys.stdlib_module_names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top = (node.module or "").split(".")[0]
                if top != "numpy" and top not in sys.stdlib_module_names:
                    foreign.append(top)
            elif node.level != 1 or node.module not in _SIBLINGS:
                foreign.append("." * node.level + (node.module or ""))
    return tuple(sorted(set(foreign)))


def supported_games() -> list[str]:
    """ale-py ROM ids whose OCAtari RAM module ``load_ram_module`` can import on its own."""
    ram_dir = _ram_dir()
    names = _module_names(ram_dir)
    return sorted(
        g
        for g in roms.get_all_rom_ids()
        if g.replace("_", "") in names and not _foreign_imports(ram_dir, g.replace("_", ""))
    )


def load_ram_module(game: str) -> types.ModuleType:
    """Import OCAtari's RAM module of ``game`` without running ``ocatari/__init__.py``.

    Args:
        game: an ale-py ROM id (snake_case, e.g. ``"breakout"``, ``"ms_pacman"``); OCAtari's file
            name is the id without underscores (``ocatari/ram/mspacman.py``).

    Returns:
        The module, registered as ``_ocatari_ram.<name>``; it has ``_init_objects_ram(hud)`` and
        ``_detect_objects_ram(objects, ram, hud)``.

    Raises:
        ModuleNotFoundError: ocatari is not installed (the message names the fix).
        ValueError: ``game`` has no OCAtari RAM module, or one that imports more than numpy, the
            standard library and its siblings (the message lists the games that load).
    """
    ram_dir = _ram_dir()
    name = game.replace("_", "") if isinstance(game, str) else None
    if name not in _module_names(ram_dir) or game not in roms.get_all_rom_ids():
        raise ValueError(f"no OCAtari RAM module for game {game!r}; supported: {', '.join(supported_games())}")
    foreign = _foreign_imports(ram_dir, name)
    if foreign:
        raise ValueError(
            f"OCAtari's RAM module for {game!r} imports {', '.join(foreign)} (more than numpy and its "
            f"siblings), so it is not loaded on its own; supported: {', '.join(supported_games())}"
        )
    package = sys.modules.get(_PACKAGE)
    if package is None or list(getattr(package, "__path__", [])) != [ram_dir]:
        for key in [k for k in sys.modules if k.startswith(_PACKAGE + ".")]:
            del sys.modules[key]
        package = types.ModuleType(_PACKAGE, "OCAtari's ram/ folder without its __init__ (envs.objects).")
        package.__path__ = [ram_dir]
        package.__package__ = _PACKAGE
        sys.modules[_PACKAGE] = package
    return importlib.import_module(f"{_PACKAGE}.{name}")


def _check_game(game: str) -> None:
    if game not in OBJECT_CLASSES:
        raise ValueError(f"no object classes for game {game!r}; supported: {', '.join(OBJECT_CLASSES)}")


class ObjectExtractor:
    """RAM -> one box per object class of ``OBJECT_CLASSES[game]``, in observation pixels.

    Holds OCAtari's object list (updated in place, as OCAtari does); call ``reset()`` when a new game
    starts, then call the extractor on the RAM after reset and after every step.

    Args:
        game: an ale-py ROM id in ``OBJECT_CLASSES``.
        size: the observations are ``size x size`` (resized from 210x160).
        hud: passed to OCAtari (adds HUD objects to its list; the reported classes are unchanged).
    """

    def __init__(self, game: str, size: int = 84, *, hud: bool = False) -> None:
        _check_game(game)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        self.game = game
        self.size = size
        self.hud = hud
        self.classes: tuple[str, ...] = OBJECT_CLASSES[game]
        self._categories = [_CATEGORIES[game][c] for c in self.classes]
        self._module = load_ram_module(game)
        self.objects: list[Any] = []
        self.reset()

    def reset(self) -> None:
        """Re-initialise OCAtari's object list (at the start of every game)."""
        self.objects = self._module._init_objects_ram(self.hud)

    def raw_boxes(self, ram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Update the objects from ``ram`` (uint8 ``[128]``) and return the raw boxes.

        Returns:
            ``xywh`` int64 ``[C, 4]`` (x, y, width, height in the 210x160 frame; 0 where not visible)
            and ``visible`` bool ``[C]``.
        """
        ram = np.asarray(ram)
        if ram.shape != (128,):
            raise ValueError(f"ram must have shape (128,), got {ram.shape}")
        if ram.dtype != np.uint8:  # OCAtari's modules rely on uint8 arithmetic
            if ram.dtype.kind not in "iu" or ram.min() < 0 or ram.max() > 255:
                raise ValueError(f"ram must hold bytes (uint8, as ale.getRAM() returns), got {ram.dtype}")
            ram = ram.astype(np.uint8)
        for obj in self.objects:  # as extract_ram_info.detect_objects_ram does
            if obj:
                obj._save_prev()
        with np.errstate(over="ignore"):  # uint8 wrap-around, as under OCAtari
            self._module._detect_objects_ram(self.objects, ram, self.hud)
        xywh = np.zeros((len(self.classes), 4), dtype=np.int64)
        visible = np.zeros(len(self.classes), dtype=bool)
        for i, category in enumerate(self._categories):
            obj = next((o for o in self.objects if o and o.category == category), None)
            if obj is None or not getattr(obj, "visible", True) or obj.w <= 0 or obj.h <= 0:
                continue
            xywh[i] = obj.x, obj.y, obj.w, obj.h
            visible[i] = True
        return xywh, visible

    def __call__(self, ram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Update the objects from ``ram`` (uint8 ``[128]``, ``ale.getRAM()``).

        Returns:
            ``boxes`` float32 ``[C, 4]`` as ``(x0, y0, x1, y1)`` in the pixel coordinates of the
            ``size x size`` observation (raw x scaled by ``size / 160``, y by ``size / 210``;
            ``x1``/``y1`` are exclusive edges; zeros where not visible) and ``visible`` bool ``[C]``.
        """
        xywh, visible = self.raw_boxes(ram)
        return raw_to_obs_boxes(xywh, self.size), visible


def raw_to_obs_boxes(xywh: np.ndarray, size: int = 84) -> np.ndarray:
    """Raw ``(x, y, w, h)`` ``[..., 4]`` in the 210x160 frame -> float32 ``(x0, y0, x1, y1)`` ``[..., 4]``
    in the ``size x size`` observation (exclusive ``x1``/``y1``)."""
    xywh = np.asarray(xywh, dtype=np.float64)
    sx, sy = size / RAW_WIDTH, size / RAW_HEIGHT
    x, y, w, h = np.moveaxis(xywh, -1, 0)
    return np.stack([x * sx, y * sy, (x + w) * sx, (y + h) * sy], axis=-1).astype(np.float32)


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    # [210, 160, 3] -> [3, size, size], the protocol's INTER_AREA resize, channels first
    small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1))


def record_objects(
    game: str,
    steps: int,
    seed: int = 0,
    size: int = 84,
    frame_skip: int = 4,
    noop_max: int = 30,
    fire_reset: bool = True,
    policy: Callable[[np.ndarray, bool], int] | None = None,
    terminal_on_life_loss: bool = False,
) -> dict[str, np.ndarray]:
    """Play ``steps`` agent steps of ``game`` under the project's Atari protocol and label the boxes.

    The protocol of ``envs.AtariEnv`` replayed on a raw ``ale_py.ALEInterface``: no sticky actions,
    minimal action set; at every (re)start FIRE when ``fire_reset`` and the game has FIRE, then
    ``k ~ U[0, noop_max - 1]`` NOOPs (none when ``noop_max`` is 0); each action repeated on
    ``frame_skip`` frames; the observation is the ``INTER_AREA`` resize of the max of the step's last
    two RGB frames; a step that ends the game stops at that frame, as the native env does (its
    observation is ``max(previous pooled frame, second-to-last frame)`` if the last frame ended it,
    the previous observation if an earlier one did). After game over a new game starts. With
    ``noop_max=0`` the frames equal ``envs.AtariEnv(game, AtariOptions(noop_max=0))``'s for the
    same actions (with ``noop_max > 0`` the no-op counts are drawn differently from ale-py's).
    There is no time limit (``AtariEnv`` truncates at ``max_episode_frames``, 108,000 frames).

    The no-op counts and the default policy's uniformly random actions come from one
    ``np.random.default_rng(seed)``; ``seed`` also seeds the emulator.

    Args:
        game: an ale-py ROM id in ``OBJECT_CLASSES`` (``"breakout"``, ``"pong"``, ``"freeway"``).
        steps: number of rows ``L`` to record (>= 1).
        policy: ``(obs uint8 [3, size, size], is_first) -> int`` action index (``is_first``: ``obs``
            starts a game, so a recurrent agent resets its state); uniformly random when ``None``.
        terminal_on_life_loss: play the protocol of ``AtariOptions(terminal_on_life_loss=True)``,
            which agents trained with it know: a row reached by losing a life (some left) ends an
            episode for the agent, so its action is not asked for and the continuation is played
            (FIRE with ``fire_reset`` where the game has it, else NOOP; its reward counted); the
            next row is a new episode for the policy (``is_first=True`` in its call; the recorded
            ``is_first`` still marks new games only).

    Returns:
        Rows in the replay convention (``aime.runtime.replay``), ``L = steps``:
        ``obs`` uint8 ``[L, 3, S, S]``, ``action`` int64 ``[L]`` (taken at ``obs[t]``; not played on a
        terminal row), ``reward`` float32 ``[L]`` (received on arriving at ``obs[t]``; 0 on first rows),
        ``is_first`` bool ``[L]``, ``is_terminal`` bool ``[L]`` (game over),
        ``boxes`` float32 ``[L, C, 4]`` (``(x0, y0, x1, y1)`` in observation pixels, from the RAM
        read after the step that produced ``obs[t]``, i.e. after its last frame),
        ``visible`` bool ``[L, C]``, ``raw_boxes`` int64 ``[L, C, 4]`` (``(x, y, w, h)`` in the
        210x160 frame) and ``classes`` str ``[C]`` (``OBJECT_CLASSES[game]``).
    """
    _check_game(game)
    for name, value, low in (
        ("steps", steps, 1),
        ("size", size, 1),
        ("frame_skip", frame_skip, 1),
        ("noop_max", noop_max, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    extractor = ObjectExtractor(game, size)
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", int(seed))
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(roms.get_rom_path(game)))
    action_set = list(ale.getMinimalActionSet())
    fire = fire_reset and Action.FIRE in action_set
    rng = np.random.default_rng(seed)
    C = len(extractor.classes)

    out = {
        "obs": np.zeros((steps, 3, size, size), dtype=np.uint8),
        "action": np.zeros(steps, dtype=np.int64),
        "reward": np.zeros(steps, dtype=np.float32),
        "is_first": np.zeros(steps, dtype=bool),
        "is_terminal": np.zeros(steps, dtype=bool),
        "boxes": np.zeros((steps, C, 4), dtype=np.float32),
        "visible": np.zeros((steps, C), dtype=bool),
        "raw_boxes": np.zeros((steps, C, 4), dtype=np.int64),
    }

    def new_game() -> np.ndarray:
        ale.reset_game()
        if fire:
            ale.act(Action.FIRE)
        for _ in range(int(rng.integers(noop_max)) if noop_max > 0 else 0):
            ale.act(Action.NOOP)
        extractor.reset()
        return ale.getScreenRGB()

    pooled = new_game()  # the frame buffer the observation is made from
    prev_last = pooled
    reward, is_first, is_terminal = 0.0, True, False
    continuation = action_set.index(Action.FIRE if fire else Action.NOOP)
    lives, life_lost, restarted = ale.lives(), False, False
    for t in range(steps):
        obs = _resize(pooled, size)
        xywh, visible = extractor.raw_boxes(ale.getRAM())
        out["obs"][t] = obs
        out["reward"][t], out["is_first"][t], out["is_terminal"][t] = reward, is_first, is_terminal
        out["raw_boxes"][t], out["visible"][t] = xywh, visible
        out["boxes"][t] = raw_to_obs_boxes(xywh, size)
        if terminal_on_life_loss and life_lost:
            a = continuation  # the episode ended for the agent: the env continues the game itself
        elif policy is None:
            a = int(rng.integers(len(action_set)))
        else:
            a = int(policy(obs, is_first or restarted))
        if not 0 <= a < len(action_set):
            raise ValueError(f"policy returned action {a}, expected an int in [0, {len(action_set) - 1}]")
        out["action"][t] = a
        if t == steps - 1:
            break
        if is_terminal:
            pooled = prev_last = new_game()
            reward, is_first, is_terminal = 0.0, True, False
            lives, life_lost, restarted = ale.lives(), False, False
            continue
        restarted = life_lost
        reward, second_last, last = 0.0, None, None
        for k in range(frame_skip):
            reward += ale.act(action_set[a])
            if ale.game_over():
                break  # the native env stops at the frame that ends the game, without grabbing it
            if k == frame_skip - 2:
                second_last = ale.getScreenRGB()
            elif k == frame_skip - 1:
                last = ale.getScreenRGB()
        # native buffers: [second-to-last, last], the last pooled in place; ungrabbed ones keep
        # the previous step's contents
        if frame_skip == 1:
            second_last = last if last is not None else pooled
        a_buf = second_last if second_last is not None else prev_last
        b_buf = last if last is not None else pooled
        pooled = np.maximum(a_buf, b_buf)
        prev_last = a_buf
        is_first, is_terminal = False, bool(ale.game_over())
        life_lost, lives = 0 < ale.lives() < lives and not is_terminal, ale.lives()
    out["classes"] = np.array(extractor.classes)
    return out
