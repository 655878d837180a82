"""AttentionPrior: shapes, probabilities, recurrence, position bias, checkpointing, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from aime.attention.prior import (
    AttentionPrior,
    conv_output_mean,
    relative_position_index,
    rotary_tables,
    same_padding_taps,
)

R, HID, LAT = 7, 16, 8


def small_prior(**kwargs) -> AttentionPrior:
    defaults = dict(
        attention_resolution=R, hidden_dim=HID, latent_dim=LAT, feature_dim=16, num_heads=4, convgru_hidden_size=8
    )
    defaults.update(kwargs)
    return AttentionPrior(**defaults)


def inputs(b: int = 3, r: int = R, hid: int = HID, lat: int = LAT, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    prev = torch.rand(b, r, r, generator=g)
    prev = prev / prev.sum(dim=(1, 2), keepdim=True)
    return prev, torch.randn(b, hid, generator=g), torch.randn(b, lat, generator=g)


def test_seed_sizes_shapes_and_probabilities():
    torch.manual_seed(0)
    prior = AttentionPrior()  # the seed's defaults
    prev, h, z = inputs(2, 21, 256, 32)
    probs, info = prior(prev, h, z)
    assert probs.shape == (2, 21, 21)
    torch.testing.assert_close(probs.sum(dim=(1, 2)), torch.ones(2))
    assert (probs > 0).all()
    dx, dy = info["predicted_movement"]
    assert dx.shape == dy.shape == (2, 21, 21)
    assert info["spatial_features"].shape == (2, 32, 21, 21)
    assert info["motion_features"].shape == (2, 8, 21, 21)
    assert info["attention_logits"].shape == (2, 21, 21)
    # The map is the softmax of the logits over all positions.
    expected = rearrange(rearrange(info["attention_logits"], "b h w -> b (h w)").softmax(-1), "b (h w) -> b h w", h=21)
    torch.testing.assert_close(probs, expected)


def test_output_depends_on_hidden_and_latent_state():
    torch.manual_seed(0)
    prior = small_prior(dropout=0.0).eval()
    prev, h, z = inputs()
    base, info = prior(prev, h, z)
    other_h, info_h = prior(prev, h + 1.0, z)
    other_z, info_z = prior(prev, h, z + 1.0)
    assert not torch.allclose(base, other_h)
    assert not torch.allclose(base, other_z)
    assert not torch.allclose(info["predicted_movement"][0], info_z["predicted_movement"][0])


def test_spatial_state_is_explicit_and_carries_the_recurrence():
    torch.manual_seed(0)
    prior = small_prior(dropout=0.0).eval()
    prev, h, z = inputs()
    first, info = prior(prev, h, z)
    zeros = torch.zeros_like(info["spatial_features"])
    again, info_zero = prior(prev, h, z, spatial_state=zeros)
    torch.testing.assert_close(first, again)  # None means a zero state
    # The returned state is the ConvGRU step from the given state.
    torch.testing.assert_close(info["spatial_features"], prior.conv_gru(prev.unsqueeze(1), None))
    second, info2 = prior(prev, h, z, spatial_state=info["spatial_features"])
    torch.testing.assert_close(info2["spatial_features"], prior.conv_gru(prev.unsqueeze(1), info["spatial_features"]))
    assert not torch.allclose(first, second)


def test_batched_call_equals_per_sample_calls():
    """The world model runs the prior on B*T maps at once: samples must not interact."""
    torch.manual_seed(0)
    prior = small_prior().eval()
    prev, h, z = inputs(4)
    probs, info = prior(prev, h, z)
    for i in range(4):
        one, one_info = prior(prev[i : i + 1], h[i : i + 1], z[i : i + 1])
        torch.testing.assert_close(one[0], probs[i], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(
            one_info["predicted_movement"][1][0], info["predicted_movement"][1][i], rtol=1e-4, atol=1e-5
        )


def test_relative_position_index_encodes_offsets():
    size = 3
    index = relative_position_index(size)
    assert index.shape == (9, 9)
    for i in range(9):
        for j in range(9):
            dr = i // size - j // size
            dc = i % size - j % size
            assert index[i, j] == (dr + size - 1) * (2 * size - 1) + (dc + size - 1)
    assert index.min() == 0 and index.max() == (2 * size - 1) ** 2 - 1


def test_self_attention_uses_the_relative_bias():
    torch.manual_seed(0)
    prior = small_prior(dropout=0.0).eval()
    with torch.no_grad():
        prior.relative_bias_table.normal_(0.0, 1.0)
    bias = prior.relative_bias()
    n = R * R
    assert bias.shape == (4, n, n)
    # Every pair of positions with the same offset gets the same bias.
    assert torch.equal(bias[:, 0, 1], bias[:, R, R + 1])
    x = torch.randn(2, n, 16)
    q, k, v = rearrange(prior.self_qkv(prior.self_norm(x)), "b n (three h d) -> three b h n d", three=3, h=4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4) + bias, dim=-1)
    expected = prior.self_out(rearrange(weights @ v, "b h n d -> b n (h d)"))
    torch.testing.assert_close(prior._self_attention(x), expected, rtol=1e-4, atol=1e-5)


def test_position_bias_options():
    torch.manual_seed(0)
    none = small_prior(position_bias="none").eval()
    assert none.relative_bias_table is None and none.relative_bias() is None
    assert small_prior(use_relative_position_bias=False).position_bias == "none"
    assert small_prior().position_bias == "relative"
    prev, h, z = inputs()
    probs, _ = none(prev, h, z)
    torch.testing.assert_close(probs.sum(dim=(1, 2)), torch.ones(3))


def test_rotary_scores_depend_only_on_the_offset():
    cos, sin = rotary_tables(5, 8)
    assert cos.shape == sin.shape == (25, 8)
    from aime.attention.prior import _rotate

    q = torch.randn(8).expand(25, 8)
    k = torch.randn(8).expand(25, 8)
    scores = _rotate(q, cos, sin) @ _rotate(k, cos, sin).T  # [25, 25]
    index = relative_position_index(5)
    for offset in index.unique():
        values = scores[index == offset]
        torch.testing.assert_close(values, values[:1].expand_as(values), rtol=1e-4, atol=1e-5)
    assert scores[index == index[0, 1]][0] != scores[index == index[0, 2]][0]
    # rotation keeps norms
    torch.testing.assert_close(_rotate(q, cos, sin).norm(dim=-1), q.norm(dim=-1))
    with pytest.raises(ValueError, match="divisible by 4"):
        rotary_tables(5, 6)


def test_rotary_prior_runs_and_uses_the_fused_path_inputs():
    torch.manual_seed(0)
    prior = small_prior(position_bias="rotary").eval()
    assert prior.relative_bias() is None and prior.rotary_cos.shape == (R * R, 4)
    prev, h, z = inputs()
    probs, _ = prior(prev, h, z)
    torch.testing.assert_close(probs.sum(dim=(1, 2)), torch.ones(3))


def test_dropout_modes():
    prev, h, z = inputs()
    for mode in ("residual", "weights"):
        torch.manual_seed(0)
        prior = small_prior(dropout=0.5, dropout_mode=mode)
        prior.eval()
        a, _ = prior(prev, h, z)
        b, _ = prior(prev, h, z)
        torch.testing.assert_close(a, b)  # no dropout in eval
        prior.train()
        c, _ = prior(prev, h, z)
        assert not torch.allclose(a, c)
    assert small_prior(dropout_mode="weights")._weight_dropout() == 0.1
    assert small_prior(dropout_mode="residual")._weight_dropout() == 0.0


def test_single_context_token_is_the_seeds_broadcast():
    """With one context token (the seed's form) cross-attention adds the same vector everywhere."""
    torch.manual_seed(0)
    prior = small_prior(context_tokens=1, dropout=0.0).eval()
    x = torch.randn(2, R * R, 16)
    context = torch.randn(2, 1, 16)
    out = prior._cross_attention(x, context)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    several = small_prior(context_tokens=4, dropout=0.0).eval()
    out4 = several._cross_attention(x, torch.randn(2, 4, 16))
    assert not torch.allclose(out4, out4[:, :1].expand_as(out4))


@pytest.mark.parametrize("position_bias", ["relative", "rotary"])
@pytest.mark.parametrize("dropout_mode", ["residual", "weights"])
def test_gradient_checkpointing_gives_the_same_gradients(position_bias, dropout_mode):
    torch.manual_seed(0)
    kwargs = dict(dropout=0.1, dropout_mode=dropout_mode, position_bias=position_bias)
    plain = small_prior(use_checkpoint=False, **kwargs)
    checkpointed = small_prior(use_checkpoint=True, **kwargs)
    checkpointed.load_state_dict(plain.state_dict())
    prev, h, z = inputs()
    grads = []
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(123)  # same dropout masks
        probs, info = model(prev, h, z)
        dx, dy = info["predicted_movement"]
        (probs.square().sum() + dx.mean() + dy.square().mean()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert len(grads[0]) == sum(1 for _ in plain.parameters())
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-7, msg=name)


def test_checkpoint_is_used_only_when_training_with_grad(monkeypatch):
    import aime.attention.prior as prior_module

    calls = []
    real = prior_module.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(prior_module, "checkpoint", spy)
    prior = small_prior(use_checkpoint=True)
    prev, h, z = inputs()
    prior.eval()
    prior(prev, h, z)
    prior.train()
    with torch.no_grad():
        prior(prev, h, z)
    assert calls == []
    prior(prev, h, z)
    assert calls == [False]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(feature_dim=18, num_heads=4), "divisible by num_heads"),
        (dict(position_bias="alibi"), "position_bias"),
        (dict(dropout=1.0), "dropout"),
        (dict(motion_kernels=0), "motion_kernels"),
        (dict(position_bias="rotary", feature_dim=24, num_heads=4), "divisible by 4"),
        (dict(dropout_mode="attention"), "dropout_mode"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_prior(**kwargs)


def test_bad_input_shapes_raise_naming_expected_and_actual():
    prior = small_prior()
    prev, h, z = inputs()
    with pytest.raises(ValueError, match=r"prev_attention of shape \[B, 7, 7\], got \(3, 8, 8\)"):
        prior(torch.rand(3, 8, 8), h, z)
    with pytest.raises(ValueError, match=r"hidden_state of shape \(3, 16\), got \(3, 15\)"):
        prior(prev, h[:, :15], z)
    with pytest.raises(ValueError, match=r"latent_state of shape \(3, 8\), got \(2, 8\)"):
        prior(prev, h, z[:2])
    with pytest.raises(ValueError, match=r"spatial_state of shape \(3, 8, 7, 7\), got \(3, 4, 7, 7\)"):
        prior(prev, h, z, spatial_state=torch.zeros(3, 4, 7, 7))


def test_token_pool_runs_attention_on_pooled_cells():
    torch.manual_seed(0)
    prior = AttentionPrior(
        hidden_dim=8,
        latent_dim=4,
        feature_dim=16,
        position_bias="none",
        token_pool=3,
        use_checkpoint=False,
        dropout=0.0,
    ).eval()
    prev = torch.softmax(torch.randn(2, 441), -1).view(2, 21, 21)
    probs, info = prior(prev, torch.randn(2, 8), torch.randn(2, 4))
    assert probs.shape == (2, 21, 21)
    torch.testing.assert_close(probs.sum((1, 2)), torch.ones(2))
    # the self-attention term is constant over each 3x3 cell
    x = torch.randn(1, 441, 16)
    out = prior._pooled_self_attention(x).view(1, 7, 3, 7, 3, 16)
    torch.testing.assert_close(out, out[:, :, :1, :, :1].expand_as(out))
    with pytest.raises(ValueError, match="token_pool"):
        AttentionPrior(position_bias="relative", token_pool=3)


def test_same_padding_taps_mark_the_rows_each_kernel_row_reads():
    taps = same_padding_taps(4, 3)
    # kernel row 0 reads row i - 1 (rows 0..2), row 1 reads row i, row 2 reads row i + 1 (rows 1..3)
    assert taps.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 1]]


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_output_mean_equals_the_mean_of_the_convolution(k, channels_last):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(3, 5, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 5, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    expected = F.conv2d(x, weight, bias, padding=k // 2).mean((-2, -1))  # [3, 2]
    grid = rearrange(x, "b c h w -> b h w c") if channels_last else x
    got = conv_output_mean(grid, weight, bias, channels_last=channels_last)
    torch.testing.assert_close(got, expected)
    probe = torch.randn(3, 2, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((got * probe).sum(), (x, weight, bias))
    for mine, ref in zip(grads, torch.autograd.grad((expected * probe).sum(), (x, weight, bias))):
        torch.testing.assert_close(mine, ref)


def test_conv_output_mean_rejects_mismatched_weights():
    with pytest.raises(ValueError, match="expected weight"):
        conv_output_mean(torch.randn(2, 4, 5, 5), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="k odd"):
        conv_output_mean(torch.randn(2, 4, 5, 5), torch.randn(2, 4, 2, 2))


def test_movement_mean_is_the_mean_of_the_movement_maps():
    torch.manual_seed(0)
    prior = small_prior(dropout=0.0).double()
    prev, h, z = (t.double() for t in inputs())
    probs, info = prior(prev, h, z)
    probs_mean, info_mean = prior(prev, h, z, movement="mean")
    torch.testing.assert_close(probs_mean, probs)
    maps = torch.stack(info["predicted_movement"], -1).mean((1, 2))  # [B, 2]
    means = torch.stack(info_mean["predicted_movement"], -1)
    assert means.shape == (3, 2)
    torch.testing.assert_close(means, maps)
    weights = [p for p in prior.parameters() if p.requires_grad]
    for mine, ref in zip(
        torch.autograd.grad(means.square().sum(), weights, allow_unused=True),
        torch.autograd.grad(maps.square().sum(), weights, allow_unused=True),
    ):
        if ref is None:
            assert mine is None
        else:
            torch.testing.assert_close(mine, ref)
    with pytest.raises(ValueError, match="movement"):
        prior(prev, h, z, movement="field")
