"""Seed 003's usage examples 1-4, its Testing section and its Tensor Shape Reference, run as written.

The only change to the seed's code is the import path (``from attention_schema import X`` becomes
``from aime.attention import X``); example 4 uses ``obs`` and ``posterior`` from the earlier
examples, which its test sets up first.
"""

from __future__ import annotations

import torch

from aime.attention import (
    AttentionPosterior,
    AttentionPrior,
    AttentionSchema,
    ConvGRUCell,
    SlotAttention,
)


def test_usage_example_1_standalone_attention_posterior():
    from aime.attention import AttentionPosterior

    # Initialize
    posterior = AttentionPosterior(
        image_size=84,
        attention_resolution=21,
        hidden_dim=256,
        context_dim=128,
        num_semantic_slots=4,
        attention_fusion_mode="weighted",
        enforce_diversity=True,
    )

    # Forward pass
    obs = torch.randn(2, 3, 84, 84)  # Batch of 2 images
    h = torch.randn(2, 256)  # Hidden state from VRNN
    c = torch.randn(2, 128)  # Context from Perceiver

    attn_probs, coords = posterior(obs, h, c)

    print(f"Attention map: {attn_probs.shape}")  # [2, 21, 21]
    print(f"Attention center: {coords.shape}")  # [2, 2]

    # Access per-slot information
    print(f"Slot attention maps: {posterior.slot_attention_maps.shape}")  # [2, 4, 21, 21]
    print(f"Slot centers: {posterior.slot_centers.shape}")  # [2, 4, 2]
    print(f"Diversity loss: {posterior.diversity_loss}")  # scalar

    assert attn_probs.shape == (2, 21, 21) and coords.shape == (2, 2)
    assert posterior.slot_attention_maps.shape == (2, 4, 21, 21)
    assert posterior.slot_centers.shape == (2, 4, 2)
    assert posterior.diversity_loss.ndim == 0


def test_usage_example_2_standalone_attention_prior():
    from aime.attention import AttentionPrior

    # Initialize
    prior = AttentionPrior(
        attention_resolution=21,
        hidden_dim=256,
        latent_dim=32,
        motion_kernels=8,
        use_checkpoint=True,  # Enable gradient checkpointing
    )

    # Forward pass
    prev_attn = torch.randn(2, 21, 21)  # Attention at t-1
    h = torch.randn(2, 256)  # Hidden state
    z = torch.randn(2, 32)  # Latent state

    pred_attn, info = prior(prev_attn, h, z)

    print(f"Predicted attention: {pred_attn.shape}")  # [2, 21, 21]
    print(f"Predicted dx: {info['predicted_movement'][0].shape}")  # [2, 21, 21]
    print(f"Predicted dy: {info['predicted_movement'][1].shape}")  # [2, 21, 21]

    assert pred_attn.shape == (2, 21, 21)
    assert info["predicted_movement"][0].shape == (2, 21, 21)
    assert info["predicted_movement"][1].shape == (2, 21, 21)


def run_example_3():
    from aime.attention import AttentionSchema

    # Initialize
    attention_schema = AttentionSchema(
        image_size=84, attention_resolution=21, hidden_dim=256, latent_dim=32, context_dim=128
    )

    # Simulate sequence
    attention_sequence = []
    predicted_movements = []

    for t in range(10):
        obs_t = torch.randn(2, 3, 84, 84)
        h_t = torch.randn(2, 256)
        c_t = torch.randn(2, 128)
        z_t = torch.randn(2, 32)

        # Bottom-up attention
        attn_posterior, coords = attention_schema.posterior_net(obs_t, h_t, c_t)
        attention_sequence.append(attn_posterior)

        # Top-down prediction (if not first frame)
        if t > 0:
            attn_prior, info = attention_schema.prior_net(attention_sequence[t - 1], h_t, z_t)
            predicted_movements.append(info["predicted_movement"])

    # Compute dynamics loss
    dynamics_loss = attention_schema.compute_attention_dynamics_loss(attention_sequence, predicted_movements)

    print(f"Dynamics loss: {dynamics_loss.item()}")
    return attention_schema, attention_sequence, predicted_movements, dynamics_loss


def test_usage_example_3_full_pipeline():
    attention_schema, attention_sequence, predicted_movements, dynamics_loss = run_example_3()
    assert len(attention_sequence) == 10 and len(predicted_movements) == 9
    assert dynamics_loss.ndim == 0 and torch.isfinite(dynamics_loss)
    assert dynamics_loss.item() > 0
    dynamics_loss.backward()  # reaches the prior's movement head
    assert attention_schema.prior_net.movement_head.weight.grad.abs().sum() > 0


def test_usage_example_4_visualization():
    # What example 4 takes from the examples before it: `obs` and `posterior` (example 1) and
    # `attention_schema` (example 3), after a posterior forward.
    torch.manual_seed(0)
    attention_schema = AttentionSchema(
        image_size=84, attention_resolution=21, hidden_dim=256, latent_dim=32, context_dim=128
    )
    posterior = attention_schema.posterior_net
    obs = torch.randn(2, 3, 84, 84)
    posterior(obs, torch.randn(2, 256), torch.randn(2, 128))
    B, K = 2, 4

    # Visualize multi-object attention
    vis_outputs = attention_schema.posterior_net.visualize_multi_object_attention(
        observation=obs,  # [B, 3, 84, 84]
        slot_attention_maps=posterior.slot_attention_maps,  # [B, K, 21, 21]
        slot_centers=posterior.slot_centers,  # [B, K, 2]
        group_assignments=posterior.group_assignments,  # [B, 21, 21, K]
        return_mode="all",
    )

    # vis_outputs contains:
    # - 'slot_overlays': [B*K, 3, 84, 84] - Per-slot colored overlays
    # - 'semantic_segmentation': [B, 3, 84, 84] - Colored by dominant slot
    # - 'combined_with_contours': [B, 3, 84, 84] - Edges + centers marked
    assert vis_outputs["slot_overlays"].shape == (B * K, 3, 84, 84)
    assert vis_outputs["semantic_segmentation"].shape == (B, 3, 84, 84)
    assert vis_outputs["combined_with_contours"].shape == (B, 3, 84, 84)
    for image in vis_outputs.values():
        assert image.min() >= 0 and image.max() <= 1


def test_testing_section_basic_functionality():
    import torch

    from aime.attention import AttentionSchema

    # Initialize
    attention = AttentionSchema(image_size=84, attention_resolution=21, hidden_dim=256, latent_dim=32, context_dim=128)

    # Test posterior
    obs = torch.randn(2, 3, 84, 84)
    h = torch.randn(2, 256)
    c = torch.randn(2, 128)

    attn_post, coords = attention.posterior_net(obs, h, c)
    assert attn_post.shape == (2, 21, 21)
    assert coords.shape == (2, 2)
    print("✓ Posterior test passed")

    # Test prior
    z = torch.randn(2, 32)
    attn_prior, info = attention.prior_net(attn_post, h, z)
    assert attn_prior.shape == (2, 21, 21)
    print("✓ Prior test passed")

    # Test dynamics loss
    attention_seq = [torch.randn(2, 21, 21) for _ in range(10)]
    pred_mov = [torch.randn(2, 2) for _ in range(9)]
    loss = attention.compute_attention_dynamics_loss(attention_seq, pred_mov)
    assert loss.ndim == 0  # Scalar
    print("✓ Dynamics loss test passed")

    print("\nAll tests passed!")


def test_attention_schema_shapes():
    """Comprehensive shape testing"""
    B = 4  # batch size

    attention = AttentionSchema(image_size=84, attention_resolution=21, hidden_dim=256, latent_dim=32, context_dim=128)

    print("Testing AttentionPosterior shapes...")
    obs = torch.randn(B, 3, 84, 84)
    h = torch.randn(B, 256)
    c = torch.randn(B, 128)

    attn, coords = attention.posterior_net(obs, h, c)

    assert attn.shape == (B, 21, 21), f"Expected {(B, 21, 21)}, got {attn.shape}"
    assert coords.shape == (B, 2), f"Expected {(B, 2)}, got {coords.shape}"

    posterior = attention.posterior_net
    assert posterior.slot_attention_maps.shape == (B, 4, 21, 21)
    assert posterior.slot_centers.shape == (B, 4, 2)
    assert posterior.slot_features.shape == (B, 4, 64)
    assert posterior.bottleneck_features.shape == (B, 128)

    print("✓ All posterior shapes correct")

    print("\nTesting AttentionPrior shapes...")
    z = torch.randn(B, 32)
    prev_attn = torch.randn(B, 21, 21)

    pred_attn, info = attention.prior_net(prev_attn, h, z)

    assert pred_attn.shape == (B, 21, 21)
    assert info["spatial_features"].shape == (B, 32, 21, 21)
    assert info["motion_features"].shape == (B, 8, 21, 21)
    assert len(info["predicted_movement"]) == 2  # (dx, dy)
    assert info["predicted_movement"][0].shape == (B, 21, 21)

    print("✓ All prior shapes correct")

    print("\nAll shape tests passed!")


def test_tensor_shape_reference_table():
    """Every row of the seed's "Tensor Shape Reference" table."""
    B, K, N, D = 2, 4, 441, 64
    slot_attention = SlotAttention(num_slots=K, dim=D)
    slots, attn = slot_attention(torch.randn(B, N, D))
    assert slots.shape == (B, K, D) and attn.shape == (B, K, N)
    slots, attn = slot_attention(torch.randn(B, N, D), seed_slots=torch.randn(B, K, D))
    assert slots.shape == (B, K, D) and attn.shape == (B, K, N)

    posterior = AttentionPosterior()
    attention_probs, coords = posterior(torch.rand(B, 3, 84, 84), torch.randn(B, 256), torch.randn(B, 128))
    assert attention_probs.shape == (B, 21, 21) and coords.shape == (B, 2)
    assert posterior.slot_attention_maps.shape == (B, K, 21, 21)
    assert posterior.slot_centers.shape == (B, K, 2)
    assert posterior.slot_features.shape == (B, K, 64)
    assert posterior.bottleneck_features.shape == (B, 128)
    assert posterior.diversity_loss.ndim == 0

    prior = AttentionPrior()
    probs, info = prior(attention_probs, torch.randn(B, 256), torch.randn(B, 32))
    assert probs.shape == (B, 21, 21) and isinstance(info, dict)
    assert info["spatial_features"].shape == (B, 32, 21, 21)
    assert info["motion_features"].shape == (B, 8, 21, 21)
    dx, dy = info["predicted_movement"]
    assert dx.shape == dy.shape == (B, 21, 21)
    assert info["attention_logits"].shape == (B, 21, 21)

    schema = AttentionSchema()
    probs_now, _ = schema.posterior_net(torch.rand(B, 3, 84, 84), torch.randn(B, 256), torch.randn(B, 128))
    assert probs_now.shape == (B, 21, 21)
    assert schema.prior_net(probs, torch.randn(B, 256), torch.randn(B, 32))[0].shape == (B, 21, 21)
    loss = schema.compute_attention_dynamics_loss([probs, probs, probs], [(dx, dy), (dx, dy)])
    assert loss.ndim == 0

    cell = ConvGRUCell(input_size=1, hidden_size=32, kernel_size=5, cuda_flag=True)
    hidden = cell(torch.rand(B, 1, 21, 21))
    assert hidden.shape == (B, 32, 21, 21)
    assert cell(torch.rand(B, 1, 21, 21), hidden).shape == (B, 32, 21, 21)
