"""AttentionSchema: construction, one step, losses (list and tensor forms), overlays."""

from __future__ import annotations

import pytest
import torch

from aime.attention import (
    AttentionPosterior,
    AttentionPrior,
    AttentionSchema,
    SchemaConfig,
    attention_dynamics_loss,
    attention_prior_cross_entropy,
    slot_diversity_loss,
)

B, S, R, HID, LAT, CTX = 2, 32, 8, 16, 8, 12


def small_schema(**kwargs) -> AttentionSchema:
    defaults = dict(
        image_size=S,
        attention_resolution=R,
        hidden_dim=HID,
        latent_dim=LAT,
        context_dim=CTX,
        attention_dim=16,
        convgru_hidden_size=8,
    )
    defaults.update(kwargs)
    return AttentionSchema(**defaults)


def step_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(B, 3, S, S, generator=g),
        torch.randn(B, HID, generator=g),
        torch.randn(B, CTX, generator=g),
        torch.randn(B, LAT, generator=g),
    )


def test_builds_both_networks_with_the_shared_arguments():
    torch.manual_seed(0)
    schema = small_schema(
        num_semantic_slots=3,
        motion_kernels=5,
        position_bias="none",
        use_checkpoint=False,
        prior_dropout=0.0,
        posterior_norm="none",
    )
    assert isinstance(schema.posterior_net, AttentionPosterior)
    assert isinstance(schema.prior_net, AttentionPrior)
    assert schema.posterior_net.feature_channels == schema.prior_net.feature_dim == 16
    assert schema.posterior_net.num_semantic_slots == 3
    assert schema.prior_net.motion_kernels == 5
    assert schema.prior_net.position_bias == "none"
    assert schema.prior_net.use_checkpoint is False
    assert schema.prior_net.dropout == 0.0
    n_params = sum(p.numel() for p in schema.parameters())
    assert n_params == sum(p.numel() for p in schema.posterior_net.parameters()) + sum(
        p.numel() for p in schema.prior_net.parameters()
    )


def test_seed_default_arguments():
    schema = AttentionSchema()
    assert schema.posterior_net.image_size == 84 and schema.prior_net.attention_resolution == 21
    assert schema.posterior_net.hidden_dim == schema.prior_net.hidden_dim == 256
    assert schema.prior_net.latent_dim == 32 and schema.posterior_net.context_dim == 128
    assert schema.prior_net.use_checkpoint and schema.prior_net.position_bias == "relative"


def test_forward_step_feeds_the_posterior_map_to_the_prior():
    torch.manual_seed(0)
    schema = small_schema().eval()
    obs, h, c, z = step_inputs()
    out = schema(obs, h, c, z)
    assert out["posterior"].shape == (B, R, R) and out["prior"].shape == (B, R, R)
    assert out["coords"].shape == (B, 2)
    torch.testing.assert_close(out["posterior"].sum(dim=(1, 2)), torch.ones(B))
    torch.testing.assert_close(out["prior"].sum(dim=(1, 2)), torch.ones(B))
    expected_prior, _ = schema.prior_net(out["posterior"], h, z)
    torch.testing.assert_close(out["prior"], expected_prior)
    carried = schema(obs, h, c, z, spatial_state=out["prior_info"]["spatial_features"])
    assert not torch.allclose(carried["prior"], out["prior"])
    # precomputed features (the shared trunk) give the same step
    feats = schema.posterior_net.encode(obs)
    torch.testing.assert_close(schema(None, h, c, z, features=feats)["prior"], out["prior"])


def run_sequence(schema: AttentionSchema, t: int = 4):
    attention, movements = [], []
    for step in range(t):
        obs, h, c, z = step_inputs(step)
        attn, _ = schema.posterior_net(obs, h, c)
        attention.append(attn)
        if step > 0:
            _, info = schema.prior_net(attention[step - 1], h, z)
            movements.append(info["predicted_movement"])
    return attention, movements


def test_dynamics_loss_list_and_tensor_forms_agree_and_train_the_movement_head():
    torch.manual_seed(0)
    schema = small_schema().train()
    attention, movements = run_sequence(schema)
    from_lists = schema.compute_attention_dynamics_loss(attention, movements)
    stacked_attention = torch.stack(attention, dim=1)  # [B, T, H, W]
    stacked_movements = torch.stack([torch.stack(m, dim=1) for m in movements], dim=1)
    assert stacked_movements.shape == (B, 3, 2, R, R)
    from_tensors = schema.compute_attention_dynamics_loss(stacked_attention, stacked_movements)
    torch.testing.assert_close(from_lists, from_tensors)
    torch.testing.assert_close(from_lists, attention_dynamics_loss(attention, movements))
    assert from_lists.ndim == 0
    from_lists.backward()
    assert schema.prior_net.movement_head.weight.grad.abs().sum() > 0


def test_diversity_and_prior_losses_delegate_to_the_loss_functions():
    torch.manual_seed(0)
    schema = small_schema().eval()
    with pytest.raises(ValueError, match="previous posterior_net forward"):
        schema.compute_diversity_loss()
    obs, h, c, z = step_inputs()
    out = schema(obs, h, c, z)
    maps = schema.posterior_net.slot_attention_maps
    torch.testing.assert_close(schema.compute_diversity_loss(), schema.posterior_net.diversity_loss)
    torch.testing.assert_close(
        schema.compute_diversity_loss(maps, from_logits=False), slot_diversity_loss(maps, from_logits=False)
    )
    target = out["posterior"].detach()
    torch.testing.assert_close(
        schema.compute_prior_loss(out["prior"], target), attention_prior_cross_entropy(out["prior"], target)
    )
    logits = out["prior_info"]["attention_logits"]
    torch.testing.assert_close(
        schema.compute_prior_loss(logits, target, prior_is_logits=True),
        schema.compute_prior_loss(out["prior"], target),
        rtol=1e-4,
        atol=1e-5,
    )


def test_visualize_uses_the_last_posterior_forward():
    torch.manual_seed(0)
    schema = small_schema().eval()
    obs, h, c, z = step_inputs()
    with pytest.raises(ValueError, match="previous posterior_net forward"):
        schema.visualize_multi_object_attention(obs)
    schema.posterior_net(obs, h, c)
    vis = schema.visualize_multi_object_attention(obs)
    k = schema.posterior_net.num_semantic_slots
    assert vis["slot_overlays"].shape == (B * k, 3, S, S)
    assert vis["semantic_segmentation"].shape == (B, 3, S, S)
    assert vis["combined_with_contours"].shape == (B, 3, S, S)
    with pytest.raises(ValueError, match="slot_centers"):
        schema.visualize_multi_object_attention(obs, schema.posterior_net.slot_attention_maps)


def test_a_config_object_builds_the_same_schema_as_the_keywords():
    settings = dict(image_size=S, attention_resolution=R, hidden_dim=HID, latent_dim=LAT, context_dim=CTX)
    settings.update(
        attention_dim=16, convgru_hidden_size=8, posterior_map="softmax", position_bias="none", token_pool=2
    )
    torch.manual_seed(0)
    by_keywords = AttentionSchema(**settings)
    torch.manual_seed(0)
    by_config = AttentionSchema(SchemaConfig(**settings))
    assert by_config.config == by_keywords.config == SchemaConfig(**settings)
    for (name, a), (_, b) in zip(by_keywords.state_dict().items(), by_config.state_dict().items()):
        assert torch.equal(a, b), name
    assert by_config.posterior_net.map_mode == "softmax" and by_config.prior_net.token_pool == 2
    # keywords with a config replace its fields
    wider = AttentionSchema(SchemaConfig(**settings), num_semantic_slots=6)
    assert wider.posterior_net.num_semantic_slots == 6 and wider.config.token_pool == 2


def test_an_unknown_setting_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown settings slot_count.*num_semantic_slots"):
        AttentionSchema(slot_count=3)
