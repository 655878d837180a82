"""What a benchmark run reports besides its rows: the machine it ran on and a Markdown table."""

from __future__ import annotations

import os
import platform

import torch

from aime.bench.registry import Settings

__all__ = ["machine_info", "markdown"]


def machine_info(device: str, allocator: str, denormals: str) -> dict:
    """CPU count, torch version and threads, device (and CUDA device name), Python, platform, and the
    process's allocator and denormal settings as the caller describes them."""
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "allocator": allocator,
        "denormals": denormals,
    }


def markdown(machine: dict, settings: Settings, results: list[dict]) -> str:
    """The machine and settings lines, then one table row per result."""
    overrides = f" with {', '.join(settings.overrides)}" if settings.overrides else ""
    lines = [
        f"Machine: {machine['cpu_count']} CPUs, torch {machine['torch']}, {machine['threads']} threads, "
        f"device {machine['device']}"
        + (f" ({machine['cuda']})" if machine["cuda"] else "")
        + f", Python {machine['python']}, allocator: {machine['allocator']}, denormals: {machine['denormals']}",
        f"Settings: batch {settings.batch}, image {settings.image_size}, repeats {settings.repeats}, "
        f"warmup {settings.warmup}, world model: T {settings.seq_len}, presets {', '.join(settings.wm_presets)}"
        f"{overrides} (84x84), "
        f"env: {settings.env_steps} agent steps, acting loop: {settings.acting_steps} steps per repeat, "
        + ("clock: wall seconds" if settings.clock == "wall" else "clock: CPU seconds of the process, all threads"),
        "",
        "| benchmark | item | value | unit | note |",
        "| --- | --- | ---: | --- | --- |",
    ]
    lines += [f"| {r['benchmark']} | {r['item']} | {r['value']} | {r['unit']} | {r.get('note', '')} |" for r in results]
    return "\n".join(lines)
