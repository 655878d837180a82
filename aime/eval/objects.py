"""Does the attention schema look at the objects, and does the world model draw them?

Measured against ground-truth object boxes (OCAtari's RAM extraction, recorded by
``envs.objects.record_objects`` with the project's own preprocessing), per object class:

- **attention lift**: the posterior map's mass on the cells the object's box overlaps, divided by
  those cells' share of the map (``mass / (cells / R^2)``). 1 is the uniform map; the most a map
  can reach is ``R^2 / cells`` (all of its mass on the object).
- **best slot**: the same lift for each slot's map (normalised to sum to 1), the best slot of each
  frame taken; and that slot's centre of mass against the box centre, in pixels.
- **object-window error ratio**: squared error in a window around the object (the box grown by
  ``margin`` pixels) of the model's frame, divided by that of the episode's per-pixel median frame
  (the static scene, which lacks the moving objects). Below 1: the model draws the object. For the
  reconstruction (filtering) and for frames predicted open-loop at horizons 1 and 5. With
  ``model.decoder_attention`` also for the reconstruction from an even map (``window_ratio_state``):
  the decoder reads where the attention lies, so it can draw an object that the state ``[h, z]``
  does not hold; the actor reads the state alone. Without the map input it equals the recon ratio.
- **state-map lift**: the same lift for the map that the attention-map head predicts from the
  state ``[h, z]`` alone (trained towards the posterior's map, weight
  ``train.loss_scales.attention_map``): how much of where the attention lies the state holds.
- **prior lift**: the attention prior's map predicted open-loop (from the actions alone), at
  horizons 1 and 5, against the true boxes of those frames: does the schema predict where the
  objects will be?
- baselines beside each: the uniform map (lift 1), a motion map (``|o_t - o_{t-1}|`` pooled to
  the grid), the current-motion map (``min(|o_t - o_{t-1}|, |o_t - o_{t-2}|)``, the
  ``current_motion`` training target) and, for the window ratios, the copy-last-context-frame predictor
  and the **cell oracle** (:func:`cell_oracle`): the real frame averaged over each cell of the
  attention grid where an object's window lies, the static scene elsewhere. It is what a model
  that knows which ``S/R``-pixel cell each object is in, and nothing finer, would draw; a window
  ratio below it needs the object's place to finer than a cell.

Averages: lifts and centroid errors are means over the frames where the object is visible; window
ratios are ratios of summed errors over those frames (a per-frame ratio explodes where the median
frame happens to match). Frames before ``context`` in each window are skipped (``h`` warming up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aime.attention.overlays import entropy_ratio
from aime.world_model.objectives import current_motion_saliency, motion_saliency

__all__ = [
    "ObjectData",
    "box_cells",
    "box_window",
    "map_lift",
    "centroid_pixels",
    "window_error",
    "cell_oracle",
    "episode_medians",
    "windows_in_episodes",
    "format_seed_table",
    "evaluate_objects",
    "format_table",
]


@dataclass
class ObjectData:
    """Recorded rows with ground-truth boxes (the replay's row convention).

    ``obs uint8 [L, 3, S, S]``, ``action int [L]``, ``reward float [L]``, ``is_first bool [L]``,
    ``boxes float [L, C, 4]`` as ``(x0, y0, x1, y1)`` in pixels of the ``S x S`` frame (x1, y1
    exclusive), ``visible bool [L, C]``, ``classes``: the ``C`` class names.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    is_first: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def from_record(cls, record: dict) -> ObjectData:
        """From ``envs.objects.record_objects``'s dict."""
        return cls(
            record["obs"],
            record["action"],
            record["reward"],
            record["is_first"],
            record["boxes"],
            record["visible"],
            tuple(str(c) for c in record["classes"]),
        )

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def box_cells(boxes: Tensor, resolution: int, image_size: int) -> Tensor:
    """Cells of an ``R x R`` grid over an ``S x S`` frame that each box overlaps: ``[..., 4] -> bool [..., R, R]``."""
    cell = image_size / resolution
    edges = torch.arange(resolution, device=boxes.device, dtype=boxes.dtype) * cell  # cell starts
    x0, y0, x1, y1 = boxes.unbind(-1)
    cols = (edges + cell > x0[..., None]) & (edges < x1[..., None])  # [..., R]
    rows = (edges + cell > y0[..., None]) & (edges < y1[..., None])
    return rows[..., :, None] & cols[..., None, :]


def box_window(boxes: Tensor, image_size: int, margin: int) -> Tensor:
    """Pixels within ``margin`` of each box: ``[..., 4] -> bool [..., S, S]``."""
    pixels = torch.arange(image_size, device=boxes.device, dtype=boxes.dtype) + 0.5  # pixel centres
    x0, y0, x1, y1 = boxes.unbind(-1)
    cols = (pixels > x0[..., None] - margin) & (pixels < x1[..., None] + margin)
    rows = (pixels > y0[..., None] - margin) & (pixels < y1[..., None] + margin)
    return rows[..., :, None] & cols[..., None, :]


def map_lift(maps: Tensor, cells: Tensor) -> Tensor:
    """Mass of each map on ``cells`` over their share of the grid: ``maps [..., R, R]`` (non-negative,
    normalised here), ``cells bool [..., R, R]`` -> ``[...]`` (1 = uniform; NaN where no cell)."""
    maps = maps / maps.sum((-2, -1), keepdim=True).clamp_min(1e-12)
    count = cells.sum((-2, -1)).to(maps.dtype)
    share = count / (cells.shape[-1] * cells.shape[-2])
    mass = (maps * cells).sum((-2, -1))
    return torch.where(count > 0, mass / share.clamp_min(1e-12), torch.full_like(mass, math.nan))


def centroid_pixels(centres: Tensor, resolution: int, image_size: int) -> Tensor:
    """Centres in [-1, 1] grid coordinates (cell centres at -1 .. 1) -> pixels of the ``S x S`` frame."""
    return ((centres + 1) / 2 * (resolution - 1) + 0.5) * (image_size / resolution)


def windows_in_episodes(data: ObjectData, length: int, count: int) -> np.ndarray:
    """Start rows of up to ``count`` non-overlapping windows of ``length`` rows inside one episode."""
    first = np.asarray(data.is_first, bool).copy()
    first[0] = True
    episode = np.cumsum(first)  # episode id per row
    starts, t = [], 0
    while t + length <= len(data):
        if episode[t] == episode[t + length - 1]:
            starts.append(t)
            t += length
        else:
            t = int(np.searchsorted(episode, episode[t] + 1))  # next episode's first row
    starts = np.asarray(starts, int)
    if len(starts) > count:
        starts = starts[np.linspace(0, len(starts) - 1, count).round().astype(int)]
    return starts


def episode_medians(obs: np.ndarray, is_first: np.ndarray) -> np.ndarray:
    """Each row's episode's per-pixel median frame: ``uint8 [L, 3, S, S]``."""
    first = np.asarray(is_first, bool).copy()
    first[0] = True
    bounds = [*np.flatnonzero(first), len(obs)]
    out = np.empty_like(obs)
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[a:b] = np.median(obs[a:b], axis=0).astype(obs.dtype)
    return out


@torch.no_grad()
def evaluate_objects(
    model,
    data: ObjectData,
    context: int = 5,
    horizons: tuple[int, ...] = (1, 5),
    windows: int = 64,
    margin: int = 2,
    chunk: int = 16,
) -> dict:
    """The object-level figures of a world model (``aime.world_model.VRNN``) on recorded rows.

    Windows of ``context + max(horizons)`` rows inside one episode are observed (posterior maps,
    slots and reconstructions of every row from ``context`` on) and predicted open-loop from their
    first ``context`` rows. Returns ``{"classes": {name: {metric: value}}, "frames": {...}}``:
    per class ``lift``, ``lift_state``, ``lift_best_slot``, ``centroid_error_px``, ``lift_motion``,
    ``lift_motion_current`` (the map :func:`current_motion_saliency` gives), ``lift_uniform``
    (1.0), ``window_ratio_recon``, ``window_ratio_state``, ``window_ratio_h{h}``, ``window_ratio_copy_h{h}`` and
    ``frames`` (visible frames counted); the attention figures are absent for a model without the
    schema. ``frames`` holds whole-frame ``psnr_recon``, ``psnr_h{h}``, ``entropy_ratio`` and
    ``smallest_slot_share`` (per frame, the share of the cells that the slot with the least holds).
    """
    device = next(model.parameters()).device
    if context < 2:
        raise ValueError(
            f"evaluate_objects: expected context >= 2 (the current-motion baseline "
            f"looks two frames back), got {context}"
        )
    length = context + max(horizons)
    starts = windows_in_episodes(data, length, windows)
    if len(starts) == 0:
        raise ValueError(
            f"evaluate_objects: no window of {length} rows lies inside one episode ({len(data)} rows); record more"
        )
    rows = starts[:, None] + np.arange(length)[None]  # [W, length]
    medians = episode_medians(data.obs, data.is_first)
    was_training = model.training
    model.eval()
    size = data.obs.shape[-1]
    res = getattr(model, "resolution", 21)
    acc: dict[str, list] = {}

    def add(key: str, value: Tensor) -> None:
        acc.setdefault(key, []).append(value.detach().float().cpu())

    try:
        for i in range(0, len(rows), chunk):
            idx = rows[i : i + chunk]
            obs = torch.as_tensor(data.obs[idx], device=device)  # [W, L, 3, S, S]
            action = torch.as_tensor(data.action[idx], device=device).long()
            is_first = torch.zeros(idx.shape, dtype=torch.bool, device=device)
            is_first[:, 0] = True
            boxes = torch.as_tensor(data.boxes[idx], device=device).float()  # [W, L, C, 4]
            visible = torch.as_tensor(data.visible[idx], device=device)
            real = obs.float() / 255.0
            median = torch.as_tensor(medians[idx], device=device).float() / 255.0
            ev = slice(context, length)  # evaluated rows of each window
            out = model.observe(obs, action, is_first)
            feat = out["feat"][:, ev]
            maps, detail = (out[k][:, ev] if k in out else None for k in ("attention", "attention_detail"))
            recon = model.decode(feat, maps, detail).clamp(0, 1)
            window = box_window(boxes[:, ev], size, margin)  # [W, E, C, S, S]
            add("visible", visible[:, ev].flatten(0, 1))
            add("err_recon", window_error(recon, real[:, ev], window))
            if maps is not None and getattr(model, "decoder_attention", False):
                # what the state alone draws: the decoder told nothing of where the attention is
                even = torch.full_like(maps, 1.0 / (res * res))
                add("err_state", window_error(model.decode(feat, even).clamp(0, 1), real[:, ev], window))
            add("err_median", window_error(median[:, ev], real[:, ev], window))
            oracle = cell_oracle(
                real[:, ev].flatten(0, 1), median[:, ev].flatten(0, 1), window.flatten(0, 1), size // res
            )
            add("err_cell_oracle", window_error(oracle.unflatten(0, window.shape[:2]), real[:, ev], window))
            add("mse_recon", (recon - real[:, ev]).square().mean((-3, -2, -1)).flatten())
            ahead = model.open_loop(obs, action, is_first, context)
            predicted = ahead["frames"].clamp(0, 1)  # [W, H, ...]
            last = real[:, context - 1]
            for h in horizons:
                t = context + h - 1
                win = box_window(boxes[:, t], size, margin)[:, None]  # [W, 1, C, S, S]
                add(f"err_h{h}", window_error(predicted[:, h - 1 : h], real[:, t : t + 1], win))
                add(f"err_copy_h{h}", window_error(last[:, None], real[:, t : t + 1], win))
                add(f"err_median_h{h}", window_error(median[:, t : t + 1], real[:, t : t + 1], win))
                add(f"visible_h{h}", visible[:, t])
                add(f"mse_h{h}", (predicted[:, h - 1] - real[:, t]).square().mean((-3, -2, -1)))
                if "attention" in ahead:  # the attention prior's prediction, from actions alone
                    cells_h = box_cells(boxes[:, t], res, size)  # [W, C, R, R]
                    add(f"lift_prior_h{h}", map_lift(ahead["attention"][:, h - 1, None], cells_h))
            cells = box_cells(boxes[:, ev], res, size)  # [W, E, C, R, R]
            motion, _ = motion_saliency(obs, res)  # [W, L-1, R, R], step t pairs with frame t
            add("lift_motion", map_lift(motion[:, context - 1 : length - 1, None], cells).flatten(0, 1))
            current, _ = current_motion_saliency(obs, res)  # [W, L-2, R, R], step t pairs with frame t
            add("lift_motion_current", map_lift(current[:, context - 2 : length - 2, None], cells).flatten(0, 1))
            if "attention" in out:
                attention = out["attention"][:, ev]
                add("lift", map_lift(attention[:, :, None], cells).flatten(0, 1))
                # the attention-map head's map from [h, z] alone: where the state says attention is
                head = model.perception.head_maps(feat)  # [W, E, R, R]
                add("lift_state", map_lift(head[:, :, None], cells).flatten(0, 1))
                slots = out["slot_maps"][:, ev]  # [W, E, K, R, R]
                per_slot = map_lift(slots[:, :, None], cells[:, :, :, None])  # [W, E, C, K]
                best = per_slot.nan_to_num(-1.0).argmax(-1)  # [W, E, C]
                add("lift_best_slot", per_slot.gather(-1, best[..., None]).squeeze(-1).flatten(0, 1))
                centres = centroid_pixels(out["slot_centers"][:, ev], res, size)  # [W, E, K, 2]
                chosen = centres.gather(2, best[..., None].expand(*best.shape, 2))  # [W, E, C, 2]
                box_centre = torch.stack(
                    [(boxes[:, ev, :, 0] + boxes[:, ev, :, 2]) / 2, (boxes[:, ev, :, 1] + boxes[:, ev, :, 3]) / 2], -1
                )
                add("centroid_error_px", (chosen - box_centre).norm(dim=-1).flatten(0, 1))
                add("entropy_ratio", entropy_ratio(attention).flatten())
                # each slot's share of the cells (responsibilities sum to 1 over slots per cell): a
                # slot that holds one small object has a few thousandths; slots that have split the
                # screen into regions all hold tenths (docs/attention.md, the frame-seeded probe)
                add("smallest_slot_share", slots.float().mean((-2, -1)).amin(-1).flatten())
    finally:
        model.train(was_training)
    cat = {k: torch.cat(v) for k, v in acc.items()}
    return _summarise(cat, data.classes, horizons)


def cell_oracle(real: Tensor, median: Tensor, window: Tensor, cell: int) -> Tensor:
    """The frame a model draws that knows each object's ``cell x cell`` pixel cell and nothing finer.

    Inside the cells that an object's window touches, the real frame averaged over the cell (the
    MSE-best frame when the object may lie anywhere in its cell); elsewhere the static scene.

    Args:
        real: ``[N, 3, S, S]`` frames in [0, 1].
        median: ``[N, 3, S, S]`` the static scene (the episode's per-pixel median frame).
        window: ``[N, C, S, S]`` bool, the objects' windows (:func:`box_window`).
        cell: side of a cell in pixels (``S // R`` for the attention grid).
    Returns:
        ``[N, 3, S, S]``.
    """
    if cell < 1:
        raise ValueError(f"cell_oracle: cell must be >= 1 pixel, got {cell}")
    size = real.shape[-1]
    pooled = F.avg_pool2d(real, cell, ceil_mode=True)
    touched = F.max_pool2d(window.float().amax(1, keepdim=True), cell, ceil_mode=True)
    pooled, touched = (
        F.interpolate(x, scale_factor=cell, mode="nearest")[..., :size, :size] for x in (pooled, touched)
    )
    return median + touched * (pooled - median)


def window_error(pred: Tensor, real: Tensor, window: Tensor) -> Tensor:
    """Squared error inside each class's window: ``[W, E, 3, S, S]`` x2, ``[W, E, C, S, S]`` -> ``[W*E, C]``."""
    err = (pred - real).square().sum(-3)  # [W, E, S, S]
    return (err[:, :, None] * window).sum((-2, -1)).flatten(0, 1)


def _summarise(cat: dict[str, Tensor], classes: tuple[str, ...], horizons: tuple[int, ...]) -> dict:
    def mean(values: Tensor, mask: Tensor) -> float:
        values = values[mask & ~values.isnan()]
        return float(values.mean()) if values.numel() else math.nan

    def ratio(num: Tensor, den: Tensor, mask: Tensor) -> float:
        d = float(den[mask].sum())
        return float(num[mask].sum()) / d if d > 0 else math.nan

    def psnr(mse: Tensor) -> float:
        return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())

    result: dict = {"classes": {}, "frames": {"psnr_recon": psnr(cat["mse_recon"])}}
    for h in horizons:
        result["frames"][f"psnr_h{h}"] = psnr(cat[f"mse_h{h}"])
    for key in ("entropy_ratio", "smallest_slot_share"):
        if key in cat:
            result["frames"][key] = float(cat[key].mean())
    for c, name in enumerate(classes):
        vis = cat["visible"][:, c].bool()
        row = {
            "frames": int(vis.sum()),
            "lift_uniform": 1.0,
            "lift_motion": mean(cat["lift_motion"][:, c], vis),
            "lift_motion_current": mean(cat["lift_motion_current"][:, c], vis),
        }
        if "lift" in cat:
            row["lift"] = mean(cat["lift"][:, c], vis)
            row["lift_state"] = mean(cat["lift_state"][:, c], vis)
            for h in horizons:
                row[f"lift_prior_h{h}"] = mean(cat[f"lift_prior_h{h}"][:, c], cat[f"visible_h{h}"][:, c].bool())
            row["lift_best_slot"] = mean(cat["lift_best_slot"][:, c], vis)
            row["centroid_error_px"] = mean(cat["centroid_error_px"][:, c], vis)
        row["window_ratio_recon"] = ratio(cat["err_recon"][:, c], cat["err_median"][:, c], vis)
        state_err = cat.get("err_state", cat["err_recon"])  # a decoder that reads no map: the same
        row["window_ratio_state"] = ratio(state_err[:, c], cat["err_median"][:, c], vis)
        row["window_ratio_cell_oracle"] = ratio(cat["err_cell_oracle"][:, c], cat["err_median"][:, c], vis)
        for h in horizons:
            vis_h = cat[f"visible_h{h}"][:, c].bool()
            row[f"window_ratio_h{h}"] = ratio(cat[f"err_h{h}"][:, c], cat[f"err_median_h{h}"][:, c], vis_h)
            row[f"window_ratio_copy_h{h}"] = ratio(cat[f"err_copy_h{h}"][:, c], cat[f"err_median_h{h}"][:, c], vis_h)
        result["classes"][name] = row
    return result


COLUMNS = (
    ("lift", "lift"),
    ("lift_state", "state-map lift"),
    ("lift_best_slot", "best-slot lift"),
    ("centroid_error_px", "best-slot centroid err (px)"),
    ("lift_motion", "motion-map lift"),
    ("lift_motion_current", "current-motion lift"),
    ("lift_prior_h1", "prior lift h1"),
    ("lift_prior_h5", "prior lift h5"),
    ("window_ratio_recon", "window ratio recon"),
    ("window_ratio_state", "window ratio, even map"),
    ("window_ratio_cell_oracle", "cell oracle"),
    ("window_ratio_h1", "window ratio h1"),
    ("window_ratio_copy_h1", "copy-last h1"),
    ("window_ratio_h5", "window ratio h5"),
    ("window_ratio_copy_h5", "copy-last h5"),
)


def format_table(results: dict[str, dict]) -> str:
    """A Markdown table, one row per (model, class): ``results = {label: evaluate_objects(...)}``."""
    titles = " | ".join(title for _, title in COLUMNS)
    head = "| model | object | frames | " + titles + " | PSNR recon | entropy ratio | smallest slot share |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for label, res in results.items():
        frames = res["frames"]
        for name, row in res["classes"].items():
            cells = [f"{row[k]:.2f}" if k in row and not math.isnan(row[k]) else "-" for k, _ in COLUMNS]
            ent, share = (f"{frames[k]:.3f}" if k in frames else "-" for k in ("entropy_ratio", "smallest_slot_share"))
            lines.append(
                f"| {label} | {name} | {row['frames']} | "
                + " | ".join(cells)
                + f" | {frames['psnr_recon']:.2f} | {ent} | {share} |"
            )
    return "\n".join(lines)


def format_seed_table(results: dict[str, list[dict]], columns=COLUMNS) -> str:
    """Mean +- sd over seeds, a row per (model, class): ``results = {label: [evaluate_objects(...), ...]}``."""
    titles = " | ".join(title for _, title in columns)
    head = "| model | object | seeds | " + titles + " | PSNR recon | entropy ratio | smallest slot share |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def cell(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "-"
        mean = float(np.mean(values))
        return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {float(np.std(values, ddof=1)):.2f}"

    for label, runs in results.items():
        for name in runs[0]["classes"]:
            rows = [r["classes"][name] for r in runs]
            cells = [cell([row.get(k, math.nan) for row in rows]) for k, _ in columns]
            psnr = cell([r["frames"]["psnr_recon"] for r in runs])
            entropy, share = (
                cell([r["frames"].get(k, math.nan) for r in runs]) for k in ("entropy_ratio", "smallest_slot_share")
            )
            lines.append(
                f"| {label} | {name} | {len(runs)} | " + " | ".join(cells) + f" | {psnr} | {entropy} | {share} |"
            )
    return "\n".join(lines)
