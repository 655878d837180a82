import pytest
import torch

from aime.nn.perceiver import PerceiverEncoder


def test_shapes_for_tokens_and_feature_maps():
    enc = PerceiverEncoder(token_dim=16, out_dim=10, num_latents=4, latent_dim=32, heads=4)
    assert enc(torch.randn(3, 50, 16)).shape == (3, 10)
    feats = torch.randn(3, 16, 7, 7)
    torch.testing.assert_close(enc(feats), enc(feats.flatten(2).transpose(1, 2)))


def test_invariant_to_token_order_and_batch_independent():
    torch.manual_seed(0)
    enc = PerceiverEncoder(token_dim=8, out_dim=5, num_latents=3, latent_dim=16, heads=2).eval()
    tokens = torch.randn(4, 30, 8)
    out = enc(tokens)
    torch.testing.assert_close(enc(tokens[:, torch.randperm(30)]), out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc(tokens[1:2]), out[1:2], atol=1e-5, rtol=1e-5)
    # the output depends on the tokens
    assert (enc(torch.randn(4, 30, 8)) - out).abs().max() > 1e-3


def test_gradients_reach_every_parameter():
    enc = PerceiverEncoder(token_dim=8, out_dim=5, num_latents=3, latent_dim=16, heads=2)
    enc(torch.randn(2, 12, 8)).square().sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_shapes_raise():
    enc = PerceiverEncoder(token_dim=8, out_dim=5, latent_dim=16, heads=2)
    with pytest.raises(ValueError, match=r"expected \[B, N, 8\]"):
        enc(torch.randn(2, 12, 9))
    with pytest.raises(ValueError, match="multiple of heads"):
        PerceiverEncoder(token_dim=8, out_dim=5, latent_dim=15, heads=2)
