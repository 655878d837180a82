r"""Losses on spatial maps ``[B, C, H, W]`` from the batch RGB latent-evolution experiment (seed 004).

* :func:`magnitude_loss` -- :math:`\mathrm{relu}(m - \mathrm{mean}|x|)`: keeps the maps away from zero.
* :func:`info_nce_patch_coherence` -- InfoNCE over ``p x p`` patches: for sampled anchor positions, the
  patches within ``positive_radius`` pixels are positives, those beyond ``negative_radius`` are negatives;
  nearby patches are pulled together and distant ones pushed apart, which grows coherent regions.
* :func:`spatial_diversity_loss` -- mean off-diagonal cosine similarity (over the batch) of the per-pixel
  channel norms, divided by a temperature: different batch elements are pushed to different layouts.
* :func:`pairwise_spatial_similarity` -- the same similarity without temperature, as a metric.

The seed computes InfoNCE with a Python loop over images and anchors; :func:`info_nce_patch_coherence` computes
the same loss for all images and anchors at once. :func:`info_nce_patch_coherence_reference` keeps the seed's
literal loop (for tests and for measuring the speed-up). Both take the anchors from
:func:`sample_info_nce_anchors`, so they can be run on identical samples.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "InfoNCESamples",
    "extract_patches",
    "info_nce_patch_coherence",
    "info_nce_patch_coherence_reference",
    "latent_evolution_losses",
    "magnitude_loss",
    "pairwise_spatial_similarity",
    "sample_info_nce_anchors",
    "spatial_diversity_loss",
]


class InfoNCESamples(NamedTuple):
    """Anchors of one InfoNCE evaluation and the positives / negatives they imply.

    Attributes:
        anchor_indices: flat positions ``y * W + x`` of the anchors, ``[B, N]`` (long), distinct per image.
        positive_mask: ``[B, N, H*W]``, positions at distance ``0 < d <= positive_radius`` from the anchor.
        negative_mask: ``[B, N, H*W]``, positions at distance ``d > negative_radius``.
        num_samples: the requested anchors per image (the loss is normalised by ``B * num_samples``, as in the
            seed, even when the map has fewer positions).
    """

    anchor_indices: torch.Tensor
    positive_mask: torch.Tensor
    negative_mask: torch.Tensor
    num_samples: int


def _check_maps(latents: torch.Tensor, name: str = "latents") -> None:
    if not isinstance(latents, torch.Tensor) or latents.dim() != 4:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"expected {name} [B, C, H, W], got {shape}")
    if latents.numel() == 0:
        raise ValueError(f"expected non-empty {name} [B, C, H, W], got {tuple(latents.shape)}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def magnitude_loss(latents: torch.Tensor, min_magnitude: float = 0.3) -> torch.Tensor:
    r"""Penalty for maps whose mean absolute value falls below ``min_magnitude``.

    :math:`\mathcal{L} = \max(0, m - \frac{1}{BCHW}\sum |x|)`

    Args:
        latents: ``[B, C, H, W]``.
        min_magnitude: :math:`m` >= 0.

    Returns:
        0-dim loss.
    """
    _check_maps(latents)
    if not min_magnitude >= 0:
        raise ValueError(f"min_magnitude must be >= 0, got {min_magnitude}")
    return torch.relu(min_magnitude - latents.abs().mean())


def extract_patches(latents: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Replicate-padded ``p x p`` patch around every pixel, flattened as ``unfold`` does (channel-major).

    Args:
        latents: ``[B, C, H, W]``.
        patch_size: odd ``p``.

    Returns:
        ``[B, H*W, C*p*p]``; row ``y * W + x`` is the patch centred on pixel ``(y, x)``.
    """
    _check_maps(latents)
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be a positive odd int (one patch centred per pixel), got {patch_size!r}")
    pad = patch_size // 2
    padded = F.pad(latents, (pad, pad, pad, pad), mode="replicate") if pad > 0 else latents
    patches = F.unfold(padded, kernel_size=patch_size, stride=1)  # [B, C*p*p, H*W]
    return rearrange(patches, "b d n -> b n d")


def sample_info_nce_anchors(
    batch_size: int,
    height: int,
    width: int,
    num_samples: int = 100,
    positive_radius: float = 3.0,
    negative_radius: float = 11.0,
    device: torch.device | None = None,
    generator: torch.Generator | None = None,
) -> InfoNCESamples:
    """Draw ``min(num_samples, H*W)`` distinct anchor positions per image and build the positive / negative masks.

    Anchors are a uniformly random subset of the positions of each image (like the seed's ``randperm``), drawn
    for all images at once from ``generator`` (its device must match ``device``).

    Returns:
        :class:`InfoNCESamples` with ``anchor_indices [B, N]`` and masks ``[B, N, H*W]``.
    """
    for name, value in (("batch_size", batch_size), ("height", height), ("width", width), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not positive_radius >= 0 or not negative_radius >= 0:
        raise ValueError(f"the radii must be >= 0, got positive {positive_radius} and negative {negative_radius}")
    num_positions = height * width
    n = min(num_samples, num_positions)
    # The first n indices of an argsort of i.i.d. uniforms: a uniformly random n-subset per row.
    scores = torch.rand(batch_size, num_positions, device=device, generator=generator)
    anchor_indices = scores.argsort(dim=1)[:, :n]  # [B, N]
    anchor_yx = torch.stack([anchor_indices // width, anchor_indices % width], dim=-1).float()  # [B, N, 2]
    ys = torch.arange(height, device=anchor_indices.device).repeat_interleave(width)
    xs = torch.arange(width, device=anchor_indices.device).repeat(height)
    all_yx = torch.stack([ys, xs], dim=-1).float()  # [H*W, 2]
    dist = torch.linalg.vector_norm(all_yx[None, None] - anchor_yx[:, :, None], dim=-1)  # [B, N, H*W]
    positive_mask = (dist > 0) & (dist <= positive_radius)
    negative_mask = dist > negative_radius
    return InfoNCESamples(anchor_indices, positive_mask, negative_mask, num_samples)


def _check_samples(samples: InfoNCESamples, batch_size: int, num_positions: int) -> None:
    a = samples.anchor_indices
    if a.dim() != 2 or a.shape[0] != batch_size:
        raise ValueError(f"expected anchor_indices [{batch_size}, N], got {tuple(a.shape)}")
    expected = (batch_size, a.shape[1], num_positions)
    for name in ("positive_mask", "negative_mask"):
        mask = getattr(samples, name)
        if tuple(mask.shape) != expected:
            raise ValueError(f"expected {name} {list(expected)}, got {tuple(mask.shape)}")


def info_nce_patch_coherence(
    latents: torch.Tensor,
    patch_size: int = 3,
    num_samples: int = 100,
    temperature: float = 1.0,
    positive_radius: float = 3.0,
    negative_radius: float = 11.0,
    generator: torch.Generator | None = None,
    samples: InfoNCESamples | None = None,
) -> torch.Tensor:
    r"""InfoNCE patch coherence of the seed, vectorised over images and anchors.

    For an anchor patch :math:`q` with cosine similarities :math:`c_j = \cos(q, k_j) / T` to every patch,
    positives :math:`P` and negatives :math:`N`:

    .. math::
        \ell = -\log \frac{\bar e_P}{\bar e_P + \bar e_N + 10^{-8}}, \quad
        \bar e_P = \frac{1}{|P|}\sum_{j \in P} e^{c_j}, \; \bar e_N = \frac{1}{|N|}\sum_{j \in N} e^{c_j}

    Anchors without positives or without negatives contribute 0. The loss is
    :math:`\sum \ell / (B \cdot \text{num\_samples})`. The exponentials are computed relative to the per-anchor
    maximum (the ratio is unchanged), so small temperatures do not overflow.

    Args:
        latents: ``[B, C, H, W]``.
        patch_size: odd patch side ``p``; patches are replicate-padded ``C*p*p`` vectors.
        num_samples: anchors per image (at most ``H*W`` are used).
        temperature: :math:`T` > 0.
        positive_radius, negative_radius: in pixels (Euclidean).
        generator: random source of the anchors (ignored when ``samples`` is given).
        samples: precomputed anchors (:func:`sample_info_nce_anchors`).

    Returns:
        0-dim loss.
    """
    _check_maps(latents)
    _check_positive("temperature", temperature)
    b, _, h, w = latents.shape
    if samples is None:
        samples = sample_info_nce_anchors(
            b, h, w, num_samples, positive_radius, negative_radius, device=latents.device, generator=generator
        )
    _check_samples(samples, b, h * w)
    patches = F.normalize(extract_patches(latents, patch_size), dim=-1)  # [B, HW, D]
    index = samples.anchor_indices[..., None].expand(-1, -1, patches.shape[-1])  # [B, N, D]
    anchors = torch.gather(patches, 1, index)  # [B, N, D]
    sims = torch.einsum("bnd,bmd->bnm", anchors, patches) / temperature  # [B, N, HW]

    pos, neg = samples.positive_mask, samples.negative_mask
    n_pos = pos.sum(-1)  # [B, N]
    n_neg = neg.sum(-1)
    valid = (n_pos > 0) & (n_neg > 0)  # [B, N]
    # Positions in neither set are excluded before the exponential (at low temperature they could overflow).
    logits = sims.masked_fill(~(pos | neg), float("-inf"))  # [B, N, HW]
    shift = logits.amax(-1, keepdim=True).detach()  # [B, N, 1]
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    exp = torch.exp(logits - shift)  # [B, N, HW], in [0, 1]
    mean_pos = (exp * pos).sum(-1) / n_pos.clamp(min=1)  # [B, N], scaled by exp(-shift)
    mean_neg = (exp * neg).sum(-1) / n_neg.clamp(min=1)
    eps = 1e-8 * torch.exp(-shift.squeeze(-1))  # the seed's 1e-8, on the same scale
    ratio = mean_pos / (mean_pos + mean_neg + eps)
    safe_ratio = torch.where(valid, ratio, torch.ones_like(ratio))  # log(1) = 0, no NaN gradient when skipped
    per_anchor = torch.where(valid, -torch.log(safe_ratio), torch.zeros_like(ratio))
    return per_anchor.sum() / (b * max(samples.num_samples, 1))


def info_nce_patch_coherence_reference(
    latents: torch.Tensor,
    samples: InfoNCESamples,
    patch_size: int = 3,
    temperature: float = 1.0,
    positive_radius: float = 3.0,
    negative_radius: float = 11.0,
) -> torch.Tensor:
    """The seed's literal InfoNCE: Python loops over images and anchors, masks recomputed from coordinates.

    Kept as the reference that tests compare :func:`info_nce_patch_coherence` with, and as the baseline of the
    speed-up measurement in ``scripts/evolve_latents.py``. Only ``samples.anchor_indices`` is taken from
    ``samples``; positives and negatives are recomputed here as in the seed. Slow: not for training.

    Args:
        latents: ``[B, C, H, W]``.
        samples: anchors, ``anchor_indices [B, N]``.

    Returns:
        0-dim loss.
    """
    _check_maps(latents)
    _check_positive("temperature", temperature)
    b, _, h, w = latents.shape
    _check_samples(samples, b, h * w)
    patches = extract_patches(latents, patch_size)  # [B, HW, D]
    y_coords = torch.arange(h, device=latents.device).unsqueeze(1).expand(h, w).reshape(-1)
    x_coords = torch.arange(w, device=latents.device).unsqueeze(0).expand(h, w).reshape(-1)
    all_coords = torch.stack([y_coords, x_coords], dim=1).float()
    infonce_loss = latents.new_zeros(())
    for bi in range(b):
        batch_patches = patches[bi]
        anchor_indices = samples.anchor_indices[bi]
        anchor_patches = batch_patches[anchor_indices]
        anchor_coords = torch.stack([anchor_indices // w, anchor_indices % w], dim=1).float()
        for i in range(anchor_indices.shape[0]):
            anchor_patch = anchor_patches[i : i + 1]
            anchor_coord = anchor_coords[i : i + 1]
            distances = torch.norm(all_coords - anchor_coord, dim=1)
            pos_mask = (distances > 0) & (distances <= positive_radius)
            neg_mask = distances > negative_radius
            if pos_mask.sum() > 0 and neg_mask.sum() > 0:
                anchor_norm = F.normalize(anchor_patch, dim=1)
                patches_norm = F.normalize(batch_patches, dim=1)
                similarities = torch.matmul(anchor_norm, patches_norm.t()).squeeze(0)
                pos_exp = torch.exp(similarities[pos_mask] / temperature)
                neg_exp = torch.exp(similarities[neg_mask] / temperature)
                infonce_loss = infonce_loss - torch.log(pos_exp.mean() / (pos_exp.mean() + neg_exp.mean() + 1e-8))
    return infonce_loss / (b * max(samples.num_samples, 1))


def _spatial_cosine_similarity(latents: torch.Tensor) -> torch.Tensor:
    b = latents.shape[0]
    intensity = rearrange(torch.linalg.vector_norm(latents, dim=1), "b h w -> b (h w)")  # [B, HW]
    unit = F.normalize(intensity, dim=1)
    sim = unit @ unit.t()  # [B, B]
    return sim.masked_fill(torch.eye(b, device=latents.device, dtype=torch.bool), 0.0)


def spatial_diversity_loss(latents: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    r"""Mean pairwise cosine similarity of the batch's spatial layouts, divided by a temperature.

    The layout of a map is its per-pixel channel norm :math:`\|x_{:, y, x}\|_2` (colour-agnostic), flattened.
    :math:`\mathcal{L} = \frac{1}{T B (B-1)} \sum_{i \ne j} \cos(l_i, l_j)`; 0 for a batch of one.

    Args:
        latents: ``[B, C, H, W]``.
        temperature: :math:`T` > 0 (lower = stronger penalty).

    Returns:
        0-dim loss.
    """
    _check_maps(latents)
    _check_positive("temperature", temperature)
    b = latents.shape[0]
    if b < 2:
        return latents.new_zeros(())
    return (_spatial_cosine_similarity(latents) / temperature).sum() / (b * (b - 1))


def pairwise_spatial_similarity(latents: torch.Tensor) -> torch.Tensor:
    """Average pairwise cosine similarity of the spatial layouts (the seed's diversity metric; lower = more
    diverse, 1 = identical layouts, 0 for a batch of one).

    Args:
        latents: ``[B, C, H, W]``.

    Returns:
        0-dim tensor in ``[-1, 1]`` (``[0, 1]`` for the non-negative norms used here).
    """
    _check_maps(latents)
    b = latents.shape[0]
    if b < 2:
        return latents.new_zeros(())
    return _spatial_cosine_similarity(latents).sum() / (b * (b - 1))


def latent_evolution_losses(
    latents: torch.Tensor,
    patch_size: int = 3,
    num_samples: int = 100,
    temperature: float = 1.0,
    positive_radius: float = 3.0,
    negative_radius: float = 11.0,
    spatial_diversity_temperature: float = 0.5,
    min_magnitude: float = 0.3,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The seed's ``compute_losses``: all three loss terms (unweighted) for a batch ``[B, C, H, W]``.

    Returns:
        ``{"magnitude", "coherence_infonce", "spatial_diversity"}`` -> 0-dim tensors.
    """
    return {
        "magnitude": magnitude_loss(latents, min_magnitude),
        "coherence_infonce": info_nce_patch_coherence(
            latents, patch_size, num_samples, temperature, positive_radius, negative_radius, generator=generator
        ),
        "spatial_diversity": spatial_diversity_loss(latents, spatial_diversity_temperature),
    }
