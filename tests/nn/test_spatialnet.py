import math

import pytest
import torch

from aime.nn.spatialnet import (
    MLP,
    SEED_CONFIG,
    FieldDecoder,
    SpatialBlock,
    SpatialNet,
    count_parameters,
    init_positions,
    make_coordinate_grid,
    matched_mlp,
    sample_pixels,
)


def test_coordinate_grid_layout():
    g = make_coordinate_grid(3, 4)
    assert g.shape == (12, 2)
    assert g.min().item() == -1.0 and g.max().item() == 1.0
    # row-major: pixel (i, j) at i * W + j with x = column, y = row
    assert torch.allclose(g[1 * 4 + 2], torch.tensor([2 / 3 * 2 - 1, 0.0]))
    assert torch.allclose(g.reshape(3, 4, 2)[:, 0, 0], torch.full((3,), -1.0))
    with pytest.raises(ValueError):
        make_coordinate_grid(0, 4)


@pytest.mark.parametrize("init", ["grid", "uniform", "random"])
def test_init_positions_in_range(init):
    p = init_positions(20, 2, init, torch.Generator().manual_seed(0))
    assert p.shape == (20, 2)
    assert p.abs().max() <= 1.0
    assert len({tuple(row.tolist()) for row in p}) == 20  # all distinct
    if init == "random":
        assert p.norm(dim=1).max() <= 1.0 + 1e-6


def test_grid_init_is_a_regular_lattice():
    p = init_positions(20, 2, "grid")
    assert sorted(set(p[:, 0].tolist())) == pytest.approx([-0.8, -0.4, 0.0, 0.4, 0.8])
    assert sorted(set(p[:, 1].tolist())) == pytest.approx([-0.75, -0.25, 0.25, 0.75])


@pytest.mark.parametrize("similarity", ["rmf", "dot"])
def test_block_shapes_and_attention_normalised(similarity):
    block = SpatialBlock(7, 2, 5, similarity=similarity, generator=torch.Generator().manual_seed(0))
    x = torch.rand(11, 2) * 2 - 1
    y, a = block(x, return_attention=True)
    assert y.shape == (11, 5) and a.shape == (11, 7)
    assert torch.allclose(a.sum(-1), torch.ones(11), atol=1e-6)
    assert (a >= 0).all()
    yb, ab = block(x.expand(3, -1, -1), return_attention=True)
    assert yb.shape == (3, 11, 5) and ab.shape == (3, 11, 7)
    assert torch.allclose(yb[1], y, atol=1e-6)
    # output is the attention-weighted average of the beliefs
    assert torch.allclose(y, a @ block.beliefs, atol=1e-6)


def test_rmf_attention_matches_equation():
    block = SpatialBlock(4, 2, 1, init="random", generator=torch.Generator().manual_seed(1))
    x = torch.rand(6, 2)
    _, a = block(x, return_attention=True)
    d2 = ((x[:, None, :] - block.positions[None]) ** 2).sum(-1)
    expected = torch.softmax(-d2 / (2 * block.sigma**2), dim=-1)
    assert torch.allclose(a, expected, atol=1e-5)


def test_dot_attention_matches_equation_and_differs_from_rmf():
    block = SpatialBlock(4, 2, 1, similarity="dot", init="random", generator=torch.Generator().manual_seed(1))
    x = torch.rand(6, 2)
    _, a = block(x, return_attention=True)
    expected = torch.softmax((x @ block.positions.T) / block.sigma**2, dim=-1)
    assert torch.allclose(a, expected, atol=1e-5)
    rmf = SpatialBlock(4, 2, 1, similarity="rmf", init="random", generator=torch.Generator().manual_seed(1))
    _, a_rmf = rmf(x, return_attention=True)
    assert not torch.allclose(a, a_rmf, atol=1e-3)


def test_tiny_sigma_returns_nearest_neuron_belief():
    block = SpatialBlock(20, 2, 3, init="grid", sigma_init=1e-3, generator=torch.Generator().manual_seed(0))
    x = torch.rand(50, 2) * 2 - 1
    y = block(x)
    nearest = torch.cdist(x, block.positions).argmin(dim=1)
    assert torch.allclose(y, block.beliefs[nearest], atol=1e-4)


def test_sigma_positive_after_optimiser_pushes_it_down():
    block = SpatialBlock(5, 2, 1, sigma_init=0.05)
    opt = torch.optim.SGD(block.parameters(), lr=100.0)
    for _ in range(5):
        opt.zero_grad()
        block.sigma.sum().backward()  # gradient pushes every sigma towards (and past) zero
        opt.step()
    assert (block.sigma > 0).all()
    assert block.sigma.max() < 0.05  # it did move down
    y = block(torch.rand(4, 2))
    assert torch.isfinite(y).all()


def test_gradients_reach_positions_and_sigmas():
    for similarity in ("rmf", "dot"):
        net = SpatialNet(**SEED_CONFIG, similarity=similarity, seed=0)
        x = torch.rand(32, 2) * 2 - 1
        net(x).pow(2).mean().backward()
        for block in net.blocks:
            for p in (block.positions, block.sigma_raw, block.beliefs):
                assert p.grad is not None and p.grad.abs().sum() > 0


def test_seed_configuration_has_1420_parameters_and_matched_mlp():
    net = SpatialNet(**SEED_CONFIG)
    assert count_parameters(net) == 1420
    assert count_parameters(SpatialNet(**SEED_CONFIG, similarity="dot")) == 1420
    mlp = matched_mlp(net)
    assert abs(count_parameters(mlp) - 1420) <= 0.02 * 1420
    assert isinstance(mlp, MLP) and mlp(torch.rand(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError):
        matched_mlp(1420, depth=2, tolerance=0.001)


def test_spatialnet_shapes_and_attention_list():
    net = SpatialNet(2, 4, num_neurons=(8, 6, 5), hidden_dims=(10, 7), seed=0)
    y, attns = net(torch.rand(2, 9, 2), return_attention=True)
    assert y.shape == (2, 9, 4)
    assert [a.shape for a in attns] == [(2, 9, 8), (2, 9, 6), (2, 9, 5)]


def test_bad_shapes_and_arguments_raise():
    block = SpatialBlock(4, 2, 3)
    with pytest.raises(ValueError, match=r"\[Q, 2\]"):
        block(torch.rand(5, 3))
    with pytest.raises(ValueError):
        block(torch.rand(5))
    with pytest.raises(ValueError):
        block(torch.rand(2, 5, 2), belief_offset=torch.rand(2, 4, 2))
    with pytest.raises(ValueError):
        SpatialBlock(4, 2, 3, similarity="cosine")
    with pytest.raises(ValueError):
        SpatialBlock(4, 2, 3, init="hexagonal")
    with pytest.raises(ValueError):
        SpatialNet(num_neurons=(4, 4), hidden_dims=())
    with pytest.raises(ValueError):
        SpatialNet()(torch.rand(3, 3))
    dec = FieldDecoder(6, 3)
    with pytest.raises(ValueError, match="cond"):
        dec(torch.rand(5, 2), torch.rand(2, 7))
    with pytest.raises(ValueError, match="coords"):
        dec(torch.rand(3, 5, 2), torch.rand(2, 6))


@pytest.mark.parametrize("modulate", [("beliefs",), ("beliefs", "positions", "sigmas")])
def test_field_decoder_subset_equals_full_render(modulate):
    torch.manual_seed(0)
    dec = FieldDecoder(5, 3, modulate=modulate, output_activation="sigmoid", seed=0)
    if "positions" in modulate:  # zero-initialised shifts: make them matter for the test
        for proj in [*dec.position_proj, *dec.sigma_proj]:
            torch.nn.init.normal_(proj.weight, std=0.1)
    cond = torch.randn(2, 5)
    full = dec.render(cond, 9, 7)  # [B, C, H, W]
    assert full.shape == (2, 3, 9, 7)
    images = torch.rand(2, 3, 9, 7)
    coords, _ = sample_pixels(images, 10, torch.Generator().manual_seed(0))
    sub = dec(coords, cond)  # [B, 10, 3]
    cols = torch.round((coords[..., 0] + 1) / 2 * 6).long()
    rows = torch.round((coords[..., 1] + 1) / 2 * 8).long()
    expected = full.permute(0, 2, 3, 1)[torch.arange(2)[:, None], rows, cols]
    assert torch.allclose(sub, expected, atol=1e-5)
    # different conditions decode to different fields
    assert not torch.allclose(full[0], full[1], atol=1e-3)


def test_sample_pixels_returns_matching_values():
    images = torch.rand(3, 2, 5, 6)
    coords, values = sample_pixels(images, 8, torch.Generator().manual_seed(3))
    assert coords.shape == (3, 8, 2) and values.shape == (3, 8, 2)
    cols = torch.round((coords[..., 0] + 1) / 2 * 5).long()
    rows = torch.round((coords[..., 1] + 1) / 2 * 4).long()
    assert torch.equal(values, images.permute(0, 2, 3, 1)[torch.arange(3)[:, None], rows, cols])
    assert all(len(set(zip(r.tolist(), c.tolist()))) == 8 for r, c in zip(rows, cols))  # no repeats


def test_field_decoder_gradients_reach_condition_projection():
    dec = FieldDecoder(4, 1, modulate=("beliefs", "positions", "sigmas"), seed=0)
    cond = torch.randn(3, 4, requires_grad=True)
    dec(make_coordinate_grid(4, 4), cond).sum().backward()
    assert cond.grad is not None and cond.grad.abs().sum() > 0
    for proj in [*dec.belief_proj, *dec.position_proj, *dec.sigma_proj]:
        assert proj.weight.grad.abs().sum() > 0


def test_short_fit_reduces_loss():
    torch.manual_seed(0)
    h = w = 12
    coords = make_coordinate_grid(h, w)
    target = torch.stack([(coords[:, 0] > 0).float(), (coords[:, 1] > 0.3).float(), 0.5 * torch.ones(h * w)], -1)
    for similarity in ("rmf", "dot"):
        net = SpatialNet(**SEED_CONFIG, similarity=similarity, seed=0)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        first = None
        for _ in range(100):
            loss = (net(coords) - target).pow(2).mean()
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.5 * first, similarity


def test_field_decoder_fits_two_images_from_conditions():
    torch.manual_seed(0)
    dec = FieldDecoder(2, 1, num_neurons=(16,), hidden_dims=(), seed=0)
    coords = make_coordinate_grid(8, 8)
    targets = torch.stack([(coords[:, 0] > 0).float(), (coords[:, 1] > 0).float()])[..., None]  # [2, 64, 1]
    cond = torch.eye(2)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-2)
    for _ in range(150):
        loss = (dec(coords, cond) - targets).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert math.isfinite(loss.item())
