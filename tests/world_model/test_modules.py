import pytest
import torch

from aime.world_model.decoders import ConvDecoder
from aime.world_model.encoder import Encoder
from aime.world_model.heads import ContinueHead, RewardHead


def test_encoder_outputs_and_uint8_equals_float():
    enc = Encoder(embed_dim=20, depth=4, readout_dim=5)
    frames = torch.randint(0, 256, (3, 3, 84, 84), dtype=torch.uint8)
    features, embed, readout = enc(frames)
    assert features.shape == (3, 64, 21, 21) and embed.shape == (3, 20) and readout.shape == (3, 5, 21, 21)
    torch.testing.assert_close(enc(frames.float() / 255)[1], embed)
    with pytest.raises(ValueError, match="expected frames"):
        enc(torch.zeros(3, 1, 84, 84))


@pytest.mark.parametrize("norm", ["group", "none"])
def test_encoder_trunk_layout_follows_the_precision(norm):
    """Channels-last into the pyramid, but NCHW for GroupNorm under CPU bf16 autocast (its fast
    path there), with the same features up to bf16's rounding. The features keep the pyramid's
    layout: channels-last makes the consumers' ``b c h w -> b (h w) c`` tokens a view, not a copy."""
    torch.manual_seed(0)
    enc = Encoder(embed_dim=20, depth=4, norm=norm)
    seen = []
    enc.trunk.register_forward_pre_hook(lambda _, args: seen.append(args[0].is_contiguous()))
    frames = torch.rand(2, 3, 84, 84)
    fp32 = enc(frames)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = enc(frames)[0]
    assert seen == [False, norm == "group"]
    assert fp32.is_contiguous(memory_format=torch.channels_last)
    assert bf16.is_contiguous(memory_format=torch.contiguous_format if norm == "group" else torch.channels_last)
    torch.testing.assert_close(bf16.float(), fp32, atol=0.1, rtol=0.05)


def test_conv_decoder_shape():
    assert ConvDecoder(10, depth=4)(torch.randn(2, 10)).shape == (2, 3, 84, 84)
    for size in (64, 96, 48):  # a stride-2 first step (R 16), stride 3 (R 24, R 12)
        assert ConvDecoder(10, depth=4, image_size=size)(torch.randn(2, 10)).shape == (2, 3, size, size)
    reads = ConvDecoder(10, depth=4, image_size=64, reads_attention=True)
    assert reads(torch.randn(2, 10), torch.full((2, 16, 16), 1 / 256)).shape == (2, 3, 64, 64)
    for size in (70, 20):  # not a multiple of 4; a quarter (5) that is neither even nor a multiple of 3
        with pytest.raises(ValueError, match="multiple of 4 whose quarter"):
            ConvDecoder(10, image_size=size)


def test_reward_head_starts_at_zero_and_continue_head_shape():
    head = RewardHead(6, 8)
    torch.testing.assert_close(head(torch.randn(4, 5, 6)).mean(), torch.zeros(4, 5))
    assert ContinueHead(6, 8)(torch.randn(4, 5, 6)).shape == (4, 5)
