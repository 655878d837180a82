import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

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


def _reference_cross_attention(enc: PerceiverEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """The textbook form: keys and values of every token, then scaled dot-product attention."""
    latents = enc.latents.expand(tokens.shape[0], -1, -1)
    q = rearrange(enc.to_q(enc.norm_latents(latents)), "b l (h d) -> b h l d", h=enc.heads)
    k, v = rearrange(enc.to_kv(enc.norm_tokens(tokens)), "b n (two h d) -> two b h n d", two=2, h=enc.heads)
    attended = F.scaled_dot_product_attention(q, k, v)
    return latents + enc.to_out(rearrange(attended, "b h l d -> b l (h d)"))


def test_cross_attention_equals_keys_and_values_form():
    # forward never forms the keys and values; its result and gradients must be those of the form that does
    torch.manual_seed(0)
    enc = PerceiverEncoder(token_dim=12, out_dim=5, num_latents=3, latent_dim=16, heads=4, self_attention=False)
    with torch.no_grad():  # non-trivial norms, so that the test sees them
        enc.norm_tokens.weight.uniform_(0.5, 1.5), enc.norm_tokens.bias.normal_()
    tokens = torch.randn(2, 30, 12, requires_grad=True)
    ref_latents = _reference_cross_attention(enc, tokens)
    reference = enc.head((ref_latents + enc.mlp(ref_latents)).mean(1))
    ref_grads = torch.autograd.grad(reference.square().sum(), [tokens, *enc.parameters()])
    out = enc(tokens)
    grads = torch.autograd.grad(out.square().sum(), [tokens, *enc.parameters()])
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


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
