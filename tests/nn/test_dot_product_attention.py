"""attend: equal to the fused kernel in each of its three forms (keys-major, query-major, fused), bf16,
dropout, leading dimensions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aime.nn.dot_product_attention import FEW_KEYS, KEYS_MAJOR_BELOW, attend


@pytest.mark.parametrize("keys", [2, 4, KEYS_MAJOR_BELOW - 1, KEYS_MAJOR_BELOW, 49, FEW_KEYS + 1])
@pytest.mark.parametrize("masked", [False, True])
def test_attend_equals_the_fused_kernel(keys, masked):
    """Written out keys-major (under 16 keys), query-major (up to 64) or fused (more), the same
    attention: values and gradients, with a mask broadcast over the batch."""
    g = torch.Generator().manual_seed(keys)
    q, k, v = (torch.randn(2, 4, n, 8, generator=g, requires_grad=True) for n in (30, keys, keys))
    mask = torch.randn(1, 4, 30, keys, generator=g) if masked else None
    ours = attend(q, k, v, mask)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, fused)
    for a, b in zip(grads, torch.autograd.grad(fused.square().sum(), (q, k, v))):
        torch.testing.assert_close(a, b)


def test_attend_under_bf16_autocast_stays_near_fp32():
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(2, 4, 30, 8, generator=g),
        torch.randn(2, 4, 4, 8, generator=g),
        torch.randn(2, 4, 4, 8, generator=g),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attend(q, k, v)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), attend(q, k, v), atol=0.05, rtol=0.02)


def test_attend_dropout_acts_on_the_weights():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 50, 8, generator=g), torch.randn(1, 2, 6, 8, generator=g)
    v = torch.ones(1, 2, 6, 8)
    torch.manual_seed(0)
    out = attend(q, k, v, dropout_p=0.5)  # each row: the kept weights, scaled by 2
    assert not torch.allclose(out, torch.ones_like(out))
    torch.testing.assert_close(attend(q, k, v), torch.ones_like(out))


def test_attend_takes_any_leading_dimensions():
    """The object reader's queries are [T, B, heads, 1, d]: the same as folding T into the batch."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(3, 5, 2, 1, 8, generator=g),
        torch.randn(3, 5, 2, 4, 8, generator=g),
        torch.randn(3, 5, 2, 4, 8, generator=g),
    )
    folded = attend(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)).unflatten(0, (3, 5))
    torch.testing.assert_close(attend(q, k, v), folded)
    torch.testing.assert_close(attend(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_attend_refuses_a_boolean_mask():
    q = k = v = torch.zeros(1, 1, 3, 4)
    with pytest.raises(ValueError, match="additive float mask .* got dtype torch.bool"):
        attend(q, k, v, torch.ones(1, 1, 3, 3, dtype=torch.bool))
