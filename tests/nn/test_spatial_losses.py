"""Tests of aime.nn.spatial_losses (seed 004): the vectorised InfoNCE against the seed's loop, and the other terms."""

import pytest
import torch

from aime.nn.spatial_losses import (
    extract_patches,
    info_nce_patch_coherence,
    info_nce_patch_coherence_reference,
    latent_evolution_losses,
    magnitude_loss,
    pairwise_spatial_similarity,
    sample_info_nce_anchors,
    spatial_diversity_loss,
)


def _blob_maps(centres, size=16, sigma=2.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    maps = [torch.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2)) for y, x in centres]
    return torch.stack(maps)[:, None].repeat(1, 3, 1, 1)  # [B, 3, S, S]


@pytest.mark.parametrize(
    "cfg",
    [
        dict(patch_size=3, num_samples=7, temperature=1.0, positive_radius=2.0, negative_radius=5.0),
        dict(patch_size=1, num_samples=10, temperature=0.3, positive_radius=1.5, negative_radius=4.0),
        dict(patch_size=5, num_samples=500, temperature=0.5, positive_radius=3.0, negative_radius=6.0),  # > H*W
        dict(patch_size=3, num_samples=20, temperature=0.05, positive_radius=2.0, negative_radius=7.0),
    ],
)
def test_vectorised_info_nce_equals_loop_reference(cfg):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 10, 12, dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    samples = sample_info_nce_anchors(
        3, 10, 12, cfg["num_samples"], cfg["positive_radius"], cfg["negative_radius"], generator=g
    )
    xv = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    vec = info_nce_patch_coherence(xv, cfg["patch_size"], temperature=cfg["temperature"], samples=samples)
    ref = info_nce_patch_coherence_reference(
        xr, samples, cfg["patch_size"], cfg["temperature"], cfg["positive_radius"], cfg["negative_radius"]
    )
    assert vec.item() > 0
    assert torch.allclose(vec, ref, rtol=1e-10, atol=1e-12)
    vec.backward()
    ref.backward()
    assert torch.allclose(xv.grad, xr.grad, rtol=1e-8, atol=1e-12)


def test_generator_reproduces_the_anchors_and_the_loss():
    x = torch.randn(2, 3, 9, 9)
    kw = dict(num_samples=10, positive_radius=2.0, negative_radius=4.0)
    a = info_nce_patch_coherence(x, generator=torch.Generator().manual_seed(3), **kw)
    b = info_nce_patch_coherence(x, generator=torch.Generator().manual_seed(3), **kw)
    c = info_nce_patch_coherence(x, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    s = sample_info_nce_anchors(2, 9, 9, 10, 2.0, 4.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(info_nce_patch_coherence(x, samples=s), a)


def test_sampled_anchors_and_masks_follow_the_definition():
    samples = sample_info_nce_anchors(
        4, 6, 7, 30, positive_radius=1.5, negative_radius=3.0, generator=torch.Generator().manual_seed(0)
    )
    a = samples.anchor_indices
    assert a.shape == (4, 30) and a.dtype == torch.long
    assert int(a.min()) >= 0 and int(a.max()) < 42
    for row in a:  # distinct anchors within an image
        assert row.unique().numel() == 30
    assert not torch.equal(a[0], a[1])
    # One anchor checked by hand: (y, x) = divmod(index, W).
    idx = int(a[2, 5])
    ay, ax = divmod(idx, 7)
    pos = samples.positive_mask[2, 5].reshape(6, 7)
    neg = samples.negative_mask[2, 5].reshape(6, 7)
    for y in range(6):
        for x in range(7):
            d = ((y - ay) ** 2 + (x - ax) ** 2) ** 0.5
            assert bool(pos[y, x]) == (0 < d <= 1.5)
            assert bool(neg[y, x]) == (d > 3.0)
    # Fewer positions than requested anchors: all positions, once.
    small = sample_info_nce_anchors(2, 3, 3, 50, 1.0, 1.0)
    assert small.anchor_indices.shape == (2, 9) and small.num_samples == 50
    assert torch.equal(small.anchor_indices.sort(dim=1).values, torch.arange(9).expand(2, 9))


def test_info_nce_is_zero_without_negatives_and_lower_for_coherent_maps():
    x = torch.randn(2, 3, 8, 8)
    assert info_nce_patch_coherence(x, negative_radius=100.0) == 0
    torch.manual_seed(0)
    coherent = _blob_maps([(4, 4), (11, 11)]) - 0.5
    noise = torch.randn_like(coherent)
    kw = dict(num_samples=100, positive_radius=2.0, negative_radius=6.0)
    l_coh = info_nce_patch_coherence(coherent, generator=torch.Generator().manual_seed(0), **kw)
    l_noise = info_nce_patch_coherence(noise, generator=torch.Generator().manual_seed(0), **kw)
    assert l_coh < l_noise


def test_extract_patches_layout():
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(1, 2, 4, 5)
    p = extract_patches(x, 3)
    assert p.shape == (1, 20, 18)
    # Row y*W + x is the patch centred on (y, x): its middle element per channel is the pixel itself.
    centre = p[0, 1 * 5 + 2].reshape(2, 3, 3)[:, 1, 1]
    assert torch.equal(centre, x[0, :, 1, 2])
    # Replicate padding at the corner.
    corner = p[0, 0].reshape(2, 3, 3)
    assert torch.equal(corner[0], torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [5.0, 5.0, 6.0]]))


def test_magnitude_loss_behaves_as_defined():
    assert torch.isclose(magnitude_loss(torch.zeros(2, 3, 4, 4)), torch.tensor(0.3))
    assert torch.isclose(magnitude_loss(torch.full((2, 3, 4, 4), -0.1)), torch.tensor(0.2))
    assert magnitude_loss(torch.full((2, 3, 4, 4), 0.5)) == 0
    assert torch.isclose(magnitude_loss(torch.zeros(1, 1, 2, 2), min_magnitude=1.0), torch.tensor(1.0))
    x = torch.full((1, 3, 4, 4), 0.1, requires_grad=True)
    magnitude_loss(x).backward()
    assert (x.grad < 0).all()  # descending the loss grows |x|


def test_spatial_diversity_lower_for_different_patterns_than_identical():
    identical = _blob_maps([(5, 5)] * 4)
    different = _blob_maps([(3, 3), (3, 12), (12, 3), (12, 12)])
    t = 0.1
    l_same = spatial_diversity_loss(identical, temperature=t)
    l_diff = spatial_diversity_loss(different, temperature=t)
    assert torch.isclose(l_same, torch.tensor(1.0 / t))
    assert l_diff < 0.5 * l_same
    # Colour-agnostic: the same layout in another colour is still "identical".
    recoloured = identical.clone()
    recoloured[1] = torch.stack([identical[1, 0] * 3**0.5, torch.zeros(16, 16), torch.zeros(16, 16)])
    assert torch.isclose(spatial_diversity_loss(recoloured, t), l_same)
    assert spatial_diversity_loss(identical[:1]) == 0


def test_pairwise_similarity_of_identical_patterns_is_maximal():
    identical = _blob_maps([(8, 8)] * 3) * torch.tensor([1.0, 2.0, 0.5]).reshape(3, 1, 1, 1)  # scale-invariant
    assert torch.isclose(pairwise_spatial_similarity(identical), torch.tensor(1.0))
    torch.manual_seed(0)
    others = torch.randn(5, 3, 16, 16)
    assert pairwise_spatial_similarity(others) < 1.0 - 1e-3
    # Disjoint supports are orthogonal.
    disjoint = torch.zeros(2, 3, 4, 4)
    disjoint[0, :, :2] = 1.0
    disjoint[1, :, 2:] = 1.0
    assert pairwise_spatial_similarity(disjoint) == 0
    assert pairwise_spatial_similarity(others[:1]) == 0
    # The loss is the metric divided by the temperature.
    assert torch.isclose(spatial_diversity_loss(others, 0.25), pairwise_spatial_similarity(others) / 0.25)


@pytest.mark.parametrize("zeros", [False, True])
def test_gradients_are_finite(zeros):
    # All-zero maps are the degenerate case (zero norms, |x| at its kink): still no NaN.
    x = (torch.zeros(3, 3, 12, 12) if zeros else torch.randn(3, 3, 12, 12) * 0.1).requires_grad_(True)
    losses = latent_evolution_losses(
        x,
        num_samples=10,
        temperature=0.1,
        positive_radius=2.0,
        negative_radius=5.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert set(losses) == {"magnitude", "coherence_infonce", "spatial_diversity"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(x.grad).all()
    if not zeros:
        assert x.grad.abs().sum() > 0


def test_invalid_arguments_raise():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        info_nce_patch_coherence(x[0])
    with pytest.raises(ValueError):
        info_nce_patch_coherence(x, patch_size=2)
    with pytest.raises(ValueError):
        info_nce_patch_coherence(x, temperature=0.0)
    with pytest.raises(ValueError):
        info_nce_patch_coherence(x, num_samples=0)
    with pytest.raises(ValueError):
        info_nce_patch_coherence(x, samples=sample_info_nce_anchors(3, 8, 8, 5))
    with pytest.raises(ValueError):
        spatial_diversity_loss(x, temperature=-1.0)
    with pytest.raises(ValueError):
        magnitude_loss(x.flatten())
    with pytest.raises(ValueError):
        pairwise_spatial_similarity(torch.zeros(2, 3, 0, 4))
