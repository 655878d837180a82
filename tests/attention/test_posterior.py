import pytest
import torch

from aime.attention.posterior import AttentionPosterior, PosteriorResult, slot_diversity_loss, weighted_centroids


def _posterior(**kwargs) -> AttentionPosterior:
    torch.manual_seed(0)
    return AttentionPosterior(**kwargs)


def _inputs(b: int = 2, hidden_dim: int = 256, context_dim: int = 128, size: int = 84):
    g = torch.Generator().manual_seed(1)
    return (
        torch.rand(b, 3, size, size, generator=g),
        torch.randn(b, hidden_dim, generator=g),
        torch.randn(b, context_dim, generator=g),
    )


def test_seed_shape_reference():
    posterior = _posterior(
        image_size=84,
        attention_resolution=21,
        hidden_dim=256,
        context_dim=128,
        num_semantic_slots=4,
        attention_fusion_mode="weighted",
        enforce_diversity=True,
    )
    obs, h, c = _inputs(b=3)
    attn, coords = posterior(obs, h, c)
    assert attn.shape == (3, 21, 21)
    assert coords.shape == (3, 2)
    assert posterior.slot_attention_maps.shape == (3, 4, 21, 21)
    assert posterior.slot_centers.shape == (3, 4, 2)
    assert posterior.slot_features.shape == (3, 4, 64)
    assert posterior.bottleneck_features.shape == (3, 128)
    assert posterior.group_assignments.shape == (3, 21, 21, 4)
    assert posterior.features.shape == (3, 64, 21, 21)
    assert posterior.fusion_weights.shape == (3, 4)
    assert posterior.diversity_loss.dim() == 0


def test_maps_are_distributions_and_centres_are_consistent():
    posterior = _posterior()
    attn, coords = posterior(*_inputs())
    torch.testing.assert_close(attn.sum(dim=(1, 2)), torch.ones(2))
    assert (attn >= 0).all()
    # per-slot maps are responsibilities: the K slots share each position
    torch.testing.assert_close(posterior.slot_attention_maps.sum(dim=1), torch.ones(2, 21, 21))
    # group assignments: one-hot of the dominant slot per position
    ga = posterior.group_assignments
    torch.testing.assert_close(ga.sum(-1), torch.ones(2, 21, 21))
    assert torch.equal(ga.argmax(-1), posterior.slot_attention_maps.argmax(1))
    torch.testing.assert_close(posterior.slot_centers, weighted_centroids(posterior.slot_attention_maps))
    assert coords.abs().max() <= 1.0 and posterior.slot_centers.abs().max() <= 1.0


@pytest.mark.parametrize("map_mode", ["normalize", "softmax"])
@pytest.mark.parametrize("mode", ["weighted", "max", "gated"])
def test_fusion_modes(mode, map_mode):
    posterior = _posterior(attention_fusion_mode=mode, map_mode=map_mode).eval()
    attn, coords = posterior(*_inputs())
    torch.testing.assert_close(attn.sum(dim=(1, 2)), torch.ones(2))
    maps = posterior.slot_attention_maps
    if mode == "max":
        assert posterior.fusion_weights is None
        fused = maps.amax(dim=1)
    else:
        w = posterior.fusion_weights
        assert w.shape == (2, 4)
        if mode == "weighted":
            torch.testing.assert_close(w.sum(-1), torch.ones(2))
        else:
            assert ((w > 0) & (w < 1)).all()
        fused = (maps * w[:, :, None, None]).sum(1)
    if map_mode == "softmax":  # the seed's form
        expected = (fused.flatten(1) * posterior.log_sharpness.exp()).softmax(-1).view(2, 21, 21)
    else:
        expected = (fused + 1e-6) / (fused + 1e-6).sum(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(attn, expected)


def test_normalized_map_can_be_sharp_where_the_seeds_softmax_cannot(monkeypatch):
    """Slot 0 owns 4 of 441 cells (responsibilities forced): under max fusion the normalised map puts
    ~all its mass there, while the seed's softmax of the same responsibilities stays within e:1."""
    owned = torch.zeros(2, 2, 441)
    owned[:, 0, [220, 221, 241, 242]] = 1.0
    owned[:, 1] = 1.0 - owned[:, 0]
    maps = {}
    for map_mode in ("normalize", "softmax"):
        posterior = _posterior(attention_fusion_mode="max", num_semantic_slots=2, map_mode=map_mode).eval()
        monkeypatch.setattr(posterior.slot_attention, "forward", lambda *a, **k: (torch.zeros(2, 2, 64), owned))
        maps[map_mode] = posterior(*_inputs())[0]
    # max fusion of complementary responsibilities is 1 everywhere: no slot stands out
    torch.testing.assert_close(maps["normalize"], torch.full((2, 21, 21), 1 / 441))
    for map_mode in ("normalize", "softmax"):
        posterior = _posterior(attention_fusion_mode="weighted", num_semantic_slots=2, map_mode=map_mode).eval()
        monkeypatch.setattr(posterior.slot_attention, "forward", lambda *a, **k: (torch.zeros(2, 2, 64), owned))
        with torch.no_grad():  # all the fusion weight on slot 0
            posterior.fusion_head.weight.zero_()
            posterior.fusion_head.bias.copy_(torch.tensor([20.0, -20.0]))
        maps[map_mode] = posterior(*_inputs())[0]
    assert (maps["normalize"].flatten(1)[:, [220, 221, 241, 242]].sum(-1) > 0.99).all()
    ratio = maps["softmax"].flatten(1).amax(-1) / maps["softmax"].flatten(1).amin(-1)
    assert (ratio <= torch.e + 1e-3).all()
    with pytest.raises(ValueError, match="map_mode"):
        AttentionPosterior(map_mode="sharp")


def test_coords_stay_in_range_with_coordinate_noise():
    posterior = _posterior(coord_noise_std=5.0).train()
    _, coords = posterior(*_inputs(b=8))
    assert coords.abs().max() <= 1.0
    _, coords_2 = posterior(*_inputs(b=8))
    assert not torch.allclose(coords, coords_2)  # noise (and slot sampling) in training
    posterior.eval()
    torch.testing.assert_close(posterior(*_inputs())[1], posterior(*_inputs())[1])


def test_weighted_centroids_by_hand():
    maps = torch.zeros(1, 3, 5, 5)
    maps[0, 0, 0, 0] = 1.0  # top-left
    maps[0, 1, 4, 2] = 2.0  # bottom row, middle column
    maps[0, 2, 1, 4] = 1.0  # right column, second row
    maps[0, 2, 3, 4] = 1.0  # right column, fourth row -> y 0
    expected = torch.tensor([[[-1.0, -1.0], [0.0, 1.0], [1.0, 0.0]]])
    torch.testing.assert_close(weighted_centroids(maps), expected)


def test_diversity_loss_extremes():
    n = 16
    one_hot = torch.eye(4, n).view(1, 4, 4, 4)  # 4 disjoint one-hot maps over 16 positions
    # as probabilities (no softmax) disjoint maps are exactly uncorrelated
    assert slot_diversity_loss(one_hot, from_logits=False).item() == pytest.approx(0.0, abs=1e-7)
    # the seed's softmax: disjoint maps need large logits to be near 0
    assert slot_diversity_loss(50.0 * one_hot).item() == pytest.approx(0.0, abs=1e-6)
    same = torch.rand(2, 1, 4, 4).expand(2, 4, 4, 4)
    assert slot_diversity_loss(same).item() == pytest.approx(1.0, abs=1e-5)
    assert slot_diversity_loss(same, from_logits=False).item() == pytest.approx(1.0, abs=1e-5)
    partial = torch.rand(2, 4, 4, 4) * 5
    assert 0.0 < slot_diversity_loss(partial).item() < 1.0
    assert slot_diversity_loss(torch.rand(2, 1, 4, 4)).item() == 0.0  # K = 1: no pairs


def test_posterior_diversity_loss_follows_the_seed():
    posterior = _posterior()
    posterior(*_inputs())
    torch.testing.assert_close(posterior.diversity_loss, slot_diversity_loss(posterior.slot_attention_maps))
    assert posterior.diversity_loss.requires_grad
    posterior = _posterior(enforce_diversity=False)
    posterior(*_inputs())
    assert posterior.diversity_loss.item() == 0.0


@pytest.mark.parametrize("mode", ["weighted", "max", "gated"])
def test_gradients_reach_every_parameter(mode):
    posterior = _posterior(attention_fusion_mode=mode, coord_noise_std=0.1).train()
    attn, coords = posterior(*_inputs())
    target = torch.rand_like(attn)
    loss = (
        ((attn - target) ** 2).sum() * 1e3
        + coords.square().sum()
        + posterior.bottleneck_features.square().mean()
        + posterior.diversity_loss
    )
    loss.backward()
    for name, p in posterior.named_parameters():
        if name == "log_sharpness":  # the seed's softmax temperature: used by map_mode="softmax" only
            assert p.grad is None
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    seed_form = _posterior(attention_fusion_mode=mode, map_mode="softmax")
    seed_form(*_inputs())[0].square().sum().backward()
    assert seed_form.log_sharpness.grad is not None


def test_uint8_and_precomputed_features_match_float_path():
    posterior = _posterior().eval()
    obs, h, c = _inputs()
    obs_u8 = (obs * 255).round().to(torch.uint8)
    attn_f, coords_f = posterior(obs_u8.float() / 255.0, h, c)
    attn_u, coords_u = posterior(obs_u8, h, c)
    torch.testing.assert_close(attn_u, attn_f)
    torch.testing.assert_close(coords_u, coords_f)
    feats = posterior.encode(obs_u8)
    attn_p, coords_p = posterior(None, h, c, features=feats)
    torch.testing.assert_close(attn_p, attn_f)
    torch.testing.assert_close(coords_p, coords_f)


def test_batch_elements_are_independent():
    posterior = _posterior().eval()
    obs, h, c = _inputs(b=3)
    attn, coords = posterior(obs, h, c)
    attn_1, coords_1 = posterior(obs[1:2], h[1:2], c[1:2])
    torch.testing.assert_close(attn_1, attn[1:2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(coords_1, coords[1:2], atol=1e-5, rtol=1e-4)


def test_top_down_state_changes_the_attention():
    posterior = _posterior().eval()
    obs, h, c = _inputs()
    attn, _ = posterior(obs, h, c)
    attn_2, _ = posterior(obs, -h, c)
    assert not torch.allclose(attn, attn_2)


def test_frame_seeds_read_the_context_alone():
    """``slot_seeds="frame"``: the seeds (and gates) come from ``c``; ``h`` is not read and may be None."""
    for mode in ("weighted", "gated"):
        posterior = _posterior(slot_seeds="frame", attention_fusion_mode=mode).eval()
        obs, h, c = _inputs()
        attn, coords = posterior(obs, h, c)
        for other in (-h, None):
            again, again_coords = posterior(obs, other, c)
            torch.testing.assert_close(again, attn, rtol=0, atol=0)
            torch.testing.assert_close(again_coords, coords, rtol=0, atol=0)
        assert not torch.allclose(posterior(obs, h, -c)[0], attn)
        assert posterior.slot_modulator[0].in_features == 128
    with pytest.raises(ValueError, match=r"hidden_state of shape \(2, 256\), got None"):
        _posterior()(obs, None, c)
    with pytest.raises(ValueError, match="slot_seeds in"):
        AttentionPosterior(slot_seeds="slots")
    with pytest.raises(ValueError, match="needs a context"):
        AttentionPosterior(slot_seeds="frame", context_dim=0)


def test_other_configurations():
    posterior = _posterior(
        image_size=64,
        attention_resolution=16,
        hidden_dim=32,
        context_dim=0,
        feature_channels=16,
        num_semantic_slots=3,
        norm="none",
    )
    attn, coords = posterior(*_inputs(hidden_dim=32, context_dim=0, size=64))
    assert attn.shape == (2, 16, 16) and coords.shape == (2, 2)
    assert posterior.slot_attention_maps.shape == (2, 3, 16, 16)
    assert posterior.bottleneck_features.shape == (2, 16)
    n_group = sum(p.numel() for p in _posterior(norm="group").parameters())
    n_none = sum(p.numel() for p in _posterior(norm="none").parameters())
    assert n_none == n_group - 2 * (32 + 48 + 64)  # GroupNorm affine parameters only


def test_bad_inputs_raise_value_error():
    posterior = _posterior()
    obs, h, c = _inputs()
    with pytest.raises(ValueError, match=r"\[B, 3, 84, 84\].*\(2, 3, 64, 64\)"):
        posterior(torch.rand(2, 3, 64, 64), h, c)
    with pytest.raises(ValueError, match=r"hidden_state of shape \(2, 256\).*\(2, 255\)"):
        posterior(obs, h[:, :255], c)
    with pytest.raises(ValueError, match=r"context of shape \(2, 128\).*\(1, 128\)"):
        posterior(obs, h, c[:1])
    with pytest.raises(ValueError, match=r"features of shape \[B, 64, 21, 21\].*\(2, 64, 20, 20\)"):
        posterior(None, h, c, features=torch.randn(2, 64, 20, 20))
    with pytest.raises(ValueError, match="neither"):
        posterior(None, h, c)
    with pytest.raises(ValueError, match="attention_resolution 21.*got 20"):
        AttentionPosterior(attention_resolution=20)
    with pytest.raises(ValueError, match="attention_fusion_mode"):
        AttentionPosterior(attention_fusion_mode="mean")
    with pytest.raises(ValueError, match="norm"):
        AttentionPosterior(norm="batch")
    with pytest.raises(ValueError, match="dropout_p"):
        AttentionPosterior(dropout_p=1.0)


def test_prepared_inputs_give_the_same_map_as_features():
    torch.manual_seed(0)
    post = AttentionPosterior(hidden_dim=16, context_dim=8).eval()
    obs = torch.rand(2, 3, 84, 84)
    h, c = torch.randn(2, 16), torch.randn(2, 8)
    feats = post.encode(obs)
    a, xy = post(None, h, c, features=feats)
    b, xy2 = post(None, h, c, inputs=post.prepare(feats))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(xy, xy2)


@pytest.mark.parametrize("code", ["learned", "fourier"])
def test_the_fourier_position_code_lets_slots_tell_identical_tokens_apart_by_place(code):
    torch.manual_seed(0)
    net = AttentionPosterior(hidden_dim=16, context_dim=0, feature_channels=16, position_code=code).eval()
    with torch.no_grad():  # the seed's embeddings at zero: what they give before they have learned
        net.row_embed.zero_(), net.col_embed.zero_()
    features = torch.randn(1, 16, 1, 1).expand(2, 16, 21, 21)  # every cell looks the same
    net(None, torch.randn(2, 16), torch.zeros(2, 0), features=features)
    spread = net.slot_attention_maps.flatten(2).std(-1).max()
    if code == "learned":
        assert spread < 1e-5  # appearance alone: no slot can prefer one place over another
    else:
        assert spread > 1e-3  # the place alone changes the responsibilities
        assert "position_proj.weight" in net.state_dict()


def test_the_learned_position_code_keeps_the_seed_parameters():
    keys = set(AttentionPosterior(hidden_dim=16, context_dim=0, feature_channels=16).state_dict())
    assert not any(k.startswith("position_proj") for k in keys) and "row_embed" in keys
    with pytest.raises(ValueError, match="position_code"):
        AttentionPosterior(hidden_dim=16, context_dim=0, feature_channels=16, position_code="sine")


def test_step_returns_a_typed_result_and_leaves_the_module_as_it_was():
    torch.manual_seed(0)
    post = AttentionPosterior(hidden_dim=16, context_dim=8, num_semantic_slots=3).eval()
    obs, h, c = torch.rand(2, 3, 84, 84), torch.randn(2, 16), torch.randn(2, 8)
    result = post.step(h, c, features=post.encode(obs))
    assert isinstance(result, PosteriorResult)
    assert post.slot_attention_maps is None and post.bottleneck_features is None  # step sets nothing
    shapes = {
        "attention": (2, 21, 21),
        "coords": (2, 2),
        "slot_maps": (2, 3, 21, 21),
        "slot_centers": (2, 3, 2),
        "slot_features": (2, 3, 64),
        "fusion_weights": (2, 3),
        "bottleneck": (2, 8),
    }
    assert {k: tuple(getattr(result, k).shape) for k in shapes} == shapes
    # the seed's forward is the same step, with the results also left on the module
    attention, coords = post(obs, h, c)
    torch.testing.assert_close(attention, result.attention)
    torch.testing.assert_close(coords, result.coords)
    torch.testing.assert_close(post.slot_attention_maps, result.slot_maps)
    torch.testing.assert_close(post.bottleneck_features, result.bottleneck)
    with pytest.raises(ValueError, match="features"):
        post.step(h, c, features=torch.zeros(2, 64, 10, 10))


def test_without_output_grad_losses_on_the_bottleneck_and_coords_stop_at_the_slots():
    """``output_grad=False``: what others read of the slots is computed from them detached, so a loss
    on it trains the projections after the slots and nothing before; a loss on the map still does."""
    for output_grad in (True, False):
        posterior = _posterior(output_grad=output_grad).train()
        result = posterior.step(*_inputs()[1:], features=torch.randn(2, 64, 21, 21))
        (result.bottleneck.square().mean() + result.coords.square().sum()).backward()
        slots = sum(float(p.grad.abs().sum()) for p in posterior.slot_attention.parameters() if p.grad is not None)
        after = float(posterior.bottleneck_projector[0].weight.grad.abs().sum())
        assert after > 0 and (slots > 0) == output_grad
    posterior.zero_grad()
    posterior.step(*_inputs()[1:], features=torch.randn(2, 64, 21, 21)).attention.square().sum().backward()
    assert posterior.slot_attention.to_q.weight.grad.abs().sum() > 0
