"""Frames of evaluation episodes, for a person to watch: PNG files and an animated GIF or MP4 per episode.

:class:`EpisodeRecorder` is an ``on_step`` hook of :func:`aime.runtime.evaluation.evaluate`: it sees
every frame of every counted episode of every evaluation environment, the last one included, and
writes each frame (3x, nearest neighbour: Atari pixels stay sharp) beside the attention posterior's
map over it when the agent has one. Videos use OpenCV, which the project already depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from aime.attention.overlays import attention_heatmap_overlay

VIDEO_FORMATS = ("gif", "mp4")


def compose_frames(obs: np.ndarray, attention: torch.Tensor | None, upscale: int = 3) -> np.ndarray:
    """``obs`` uint8 ``[N, 3, H, W]`` (and attention ``[N, h, w]``) -> RGB uint8 ``[N, H*u, W*u*(1|2), 3]``:
    the upscaled frame, beside it the attention overlay (legible at 3x: its colour bar and figures)."""
    frames = torch.as_tensor(obs)
    panels = [F.interpolate(frames.float() / 255.0, scale_factor=upscale, mode="nearest")]
    if attention is not None:
        panels.append(attention_heatmap_overlay(frames, attention.float().cpu(), upscale=upscale))
    images = torch.cat(panels, dim=-1).clamp(0, 1).permute(0, 2, 3, 1)
    return (images.numpy() * 255).round().astype(np.uint8)


@dataclass
class _Episode:
    frames: int = 0  # frames seen
    skipped: int = 0  # frames past max_frames, not written (the last one always is)
    writer: Any = None  # cv2.VideoWriter (mp4)
    animation: list[np.ndarray] = field(default_factory=list)  # BGR frames (gif)


class EpisodeRecorder:
    """Writes every counted evaluation episode's frames to ``out``.

    Files: ``episode_{e:03d}_frame_{t:05d}.png`` (``t`` the frame's index in its episode, 0 the first
    observation, the last one after the final step) and, with ``video``, ``episode_{e:03d}.gif`` or
    ``.mp4``.

    Args:
        out: the folder (created).
        video: ``None``, ``"gif"`` or ``"mp4"``.
        max_frames: at most this many frames per episode: the first ``max_frames - 1`` and the last
            (an Atari episode can last 27,000 steps; a GIF is held in memory until its episode ends).
        upscale: the integer zoom of each frame.
        fps: the videos' frame rate.
    """

    def __init__(
        self, out: str | Path, video: str | None = None, max_frames: int = 500, upscale: int = 3, fps: int = 15
    ) -> None:
        if video not in (None, *VIDEO_FORMATS):
            raise ValueError(f"video must be one of {', '.join(VIDEO_FORMATS)}, got {video!r}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.out, self.video, self.max_frames = Path(out), video, max_frames
        self.upscale, self.fps = upscale, fps
        self.out.mkdir(parents=True, exist_ok=True)
        self.episodes: dict[int, _Episode] = {}
        self.written = self.finished = self.skipped = 0

    def __call__(self, obs: np.ndarray, extras: dict, episode: np.ndarray, last: np.ndarray) -> None:
        """The ``on_step`` hook: ``obs`` ``[N, 3, H, W]``, ``episode`` int ``[N]`` (-1: not recorded),
        ``last`` bool ``[N]``."""
        rows = np.flatnonzero(episode >= 0)
        if rows.size == 0:
            return
        attention = extras.get("attention")
        images = compose_frames(
            obs[rows], None if attention is None else attention[torch.as_tensor(rows)], self.upscale
        )
        for row, image in zip(rows, images):
            self._add(int(episode[row]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), bool(last[row]))

    def _add(self, number: int, image: np.ndarray, last: bool) -> None:
        ep = self.episodes.setdefault(number, _Episode())
        index, ep.frames = ep.frames, ep.frames + 1
        if index >= self.max_frames - 1 and not last:
            ep.skipped += 1
            return
        name = f"episode_{number:03d}"
        cv2.imwrite(str(self.out / f"{name}_frame_{index:05d}.png"), image)
        self.written += 1
        if self.video == "mp4":
            if ep.writer is None:
                ep.writer = self._mp4_writer(self.out / f"{name}.mp4", image.shape)
            ep.writer.write(image)
        elif self.video == "gif":
            ep.animation.append(image)
        if last:
            self._finish(name, ep)

    def _mp4_writer(self, path: Path, shape: tuple[int, ...]) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (shape[1], shape[0]))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MP4 files here ({path}); use --video gif")
        return writer

    def _finish(self, name: str, ep: _Episode) -> None:
        if ep.writer is not None:
            ep.writer.release()
        if ep.animation:
            animation = cv2.Animation()
            animation.frames = ep.animation
            animation.durations = [round(1000 / self.fps)] * len(ep.animation)
            if not cv2.imwriteanimation(str(self.out / f"{name}.gif"), animation):
                raise RuntimeError(f"OpenCV could not write {self.out / name}.gif")
            ep.animation = []
        self.finished += 1
        self.skipped += ep.skipped

    def summary(self) -> str:
        """One line: what was written where."""
        line = f"saved {self.written} frames of {self.finished} episodes to {self.out}"
        if self.video:
            line += f", one {self.video.upper()} per episode"
        if self.skipped:
            line += (
                f" ({self.skipped} frames past --max-frames {self.max_frames} per episode left out; "
                "each last frame kept)"
            )
        return line
