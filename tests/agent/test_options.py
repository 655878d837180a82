"""Every documented option trains: one tiny update of the whole agent per value of each choice in
``aime.config.CHOICES``, per boolean model switch flipped from its default, and per loss weight
that is 0 by default. An option that only breaks after warm-up (in imagination, say) fails here."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from aime.agent.agent import Agent
from aime.config import CHOICES, LossScales, ModelConfig, load_config

TINY = [
    "model.deter=16",
    "model.stoch=4",
    "model.classes=4",
    "model.hidden=16",
    "model.cnn_depth=4",
    "model.context_dim=8",
    "model.num_slots=2",
    "model.mixture_components=3",
    "train.batch_size=2",
    "train.seq_len=4",
    "train.horizon=2",
]
FLAGS = [
    f"model.{f.name}={str(not f.default).lower()}"
    for f in dataclasses.fields(ModelConfig)
    if isinstance(f.default, bool)
]
OFF_LOSSES = [f"train.loss_scales.{f.name}=0.1" for f in dataclasses.fields(LossScales) if f.default == 0]
OPTIONS = [f"{key}={value}" for key, values in CHOICES.items() for value in values] + FLAGS + OFF_LOSSES


def batch(b=2, t=4, actions=3):
    """Random frames with an episode boundary inside the window (the recurrent state resets there)."""
    rng = np.random.default_rng(0)
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = is_first[0, 2] = True
    return {
        "obs": rng.integers(0, 256, (b, t, 3, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, actions, (b, t)),
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((b, t), bool),
    }


def test_the_options_cover_every_choice_and_the_weights_that_are_off():
    assert "model.rnn=lstm" in OPTIONS and "model.latent=stickbreaking" in OPTIONS
    assert "train.loss_scales.nca_refinement=0.1" in OPTIONS and "model.attention=false" in OPTIONS


@pytest.mark.parametrize("option", OPTIONS)
def test_one_update_with_each_option(option):
    if option == "device=cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    overrides = TINY + [option]
    if option == "train.loss_scales.nca_refinement=0.1":
        overrides.append("model.decoder=nca")  # the weight of the NCA decoder's own loss
    if option == "model.attention_detail=true":
        overrides.append("model.decoder_attention=true")  # the decoder is what reads the detail
    cfg = load_config(["debug"], overrides)
    agent = Agent(cfg, num_actions=3, device="cuda" if option == "device=cuda" else "cpu")
    # the NCA refinement loss refines min(B*T, 8) frames at 84x84 over 4 NCA steps: one sequence of the
    # window (4 frames, the episode boundary kept) halves that update (about 1 s instead of 2 on one core)
    nca = option == "train.loss_scales.nca_refinement=0.1"
    metrics, finite = agent.train_step(batch(b=1) if nca else batch())
    assert finite, option
    assert {"losses/world_model", "losses/actor", "losses/critic"} <= set(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values()), option
    if option in OFF_LOSSES:  # the term is computed and logged once its weight is on
        assert f"losses/{option.split('=')[0].split('.')[-1]}" in metrics


def test_the_lstm_cells_continue_the_filtered_states():
    """Imagination starts from (h, c): ``observe`` returns each step's cell state, the one that,
    stepped once more, gives the next filtered h."""
    torch.manual_seed(0)
    agent = Agent(load_config(["debug"], TINY + ["model.rnn=lstm"]), num_actions=3)
    data = agent.to_tensors(batch())
    wm = agent.world_model
    with torch.no_grad():
        _, _, out = wm.loss(data)
        cells = out["cell"]  # [B, T, D]
        action = torch.nn.functional.one_hot(data["action"], 3).float()
        for t in (1, 3):  # steps that continue an episode (step 2 of sequence 0 starts one)
            state = {"deter": out["deter"][:, t - 1], "cell": cells[:, t - 1], "stoch": out["stoch"][:, t - 1]}
            nxt = wm._transition(state, action[:, t - 1])
            keep = ~data["is_first"][:, t]
            torch.testing.assert_close(nxt["deter"][keep], out["deter"][:, t][keep])
