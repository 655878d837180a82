"""The configuration's schema: the dataclass tree rooted at :class:`Config`, and the value choices.

Every field carries its default and, in the docstring written under it, its meaning (``--help``
shows it). Loading, presets, overrides and validation are in :mod:`aime.config.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A preset, key or value that does not fit the configuration schema."""


@dataclass
class EnvConfig:
    """Environment and the Atari-100k protocol options (see ``envs.make``)."""

    name: str = "Breakout"
    """Game: a short name (``Breakout``), a full id (``ALE/Breakout-v5``) or ``Catch``."""
    num_envs: int = 8
    """Parallel training environments (one vector env)."""
    eval_envs: int = 4
    """Parallel evaluation environments."""
    frame_skip: int = 4
    """Agent steps repeat the action this many frames; max-pool over the last two."""
    noop_max: int = 30
    """Up to this many no-op actions at the start of each episode."""
    repeat_action_probability: float = 0.0
    """Sticky actions: 0.0 as in the Atari-100k literature, 0.25 is ALE v5's recommendation."""
    full_action_space: bool = False
    """Use all 18 ALE actions instead of the game's minimal set."""
    max_episode_frames: int = 108_000
    """Episode time limit in emulator frames (truncation)."""
    terminal_on_life_loss: bool = False
    """Treat a lost life as terminal for learning (evaluation always plays full episodes)."""


@dataclass
class ModelConfig:
    """World-model and behaviour sizes (refined by the world-model and agent issues)."""

    deter: int = 512
    """Deterministic recurrent state size (h)."""
    stoch: int = 32
    """Stochastic latent: number of variables (categorical) or dimensions (Gaussian)."""
    classes: int = 32
    """Classes per categorical variable."""
    latent: str = "categorical"
    """Latent kind: ``gaussian``, ``categorical`` or ``stickbreaking`` (DP mixture prior)."""
    mixture_components: int = 15
    """Truncation level K of the stick-breaking mixture prior."""
    hidden: int = 512
    """Width of the MLPs (heads, actor, critic)."""
    cnn_depth: int = 32
    """Base channel count of the convolutional encoder and decoder."""
    context_dim: int = 128
    """Size of the per-frame context vector c_t (Perceiver encoder)."""
    rnn: str = "gru"
    """Recurrent transition cell: ``gru`` or ``lstm``."""
    decoder: str = "conv"
    """Image decoder: ``conv``, ``field`` (SpatialNet) or ``nca`` (conv + NCA refinement)."""
    attention: bool = True
    """The attention schema; False gives the plain recurrent state-space model (the ablation)."""
    num_slots: int = 4
    """Slots of the attention posterior."""
    attention_resolution: int = 21
    """Side of the attention maps: ``ceil(image_size / 4)`` (the feature pyramid downsamples by 4)."""
    image_size: int = 84
    """Side of the square frames the model sees (the environments render at this size): 84 for the
    Atari protocol; a multiple of 4 whose quarter is a multiple of 2 or 3 (64, 96, ...)."""
    attention_loss_fraction: float = 0.25
    """The attention prior's and map head's losses are estimated on this random fraction of steps."""
    fpn_norm: str = "group"
    """Feature-pyramid normalisation: ``group`` (the seed's GroupNorm) or ``none`` (cheaper on CPU)."""
    posterior_map: str = "normalize"
    """Posterior map from the fused slot responsibilities: ``normalize`` (divided by their sum; can be
    sharp) or ``softmax`` (the seed's form, which stays near uniform)."""
    slot_position: str = "learned"
    """Position code of the slot-attention tokens: ``learned`` (the seed's row and column embeddings,
    near zero at first) or ``fourier`` (plus a linear map of the cells' Fourier features, so the slots
    can tell apart two objects of one colour by where they are)."""
    slot_persistence: bool = False
    """The slots of step ``t-1``, through a small predictor, seed the slots of step ``t`` (SAVi; seed
    003's future extension 2), so a slot can keep the object it held; zero at an episode's start."""
    slot_seeds: str = "state"
    """What seeds the posterior's slots: ``state`` (an MLP of ``[h_t, c_t]``, the seed's top-down
    seeding; the posterior runs inside the time loop) or ``frame`` (of the frame's context ``c_t``
    alone: the posterior no longer waits for ``h_t``, so it runs batched over all ``B*T`` frames
    before the loop; where attention goes next is still the prior's, from ``h`` and ``z``). Not with
    ``slot_persistence``. Opt-in: a fifth to a quarter off the schema's cost per update, but on
    Breakout's world-model protocol its map went even on one seed of six (docs/attention.md)."""
    slot_iters: int = 3
    """Slot-attention refinement iterations of the posterior per frame: 3 (the seed's, slot
    attention's) or fewer. SAVi runs one per frame, its slots seeded by a predictor as ``state``
    seeds are here; each iteration is a third of the posterior's per-step work in the time loop."""
    attention_grad: str = "world"
    """What trains the posterior's map and slots: ``world`` (the seed's: besides the schema's own terms
    on the maps, every world-model loss that reaches them through what ``e_t`` reads, the
    map-weighted readout and ``phi`` of the slots' bottleneck and centres) or ``own`` (the schema's
    own terms alone, the motion target above all: ``e_t`` reads the map and the slots detached, and
    the layers after them still learn). Breakout's world-model protocol (docs/attention.md): with
    ``own`` six runs of six attended (four frame-seeded, the seed whose map went even with ``world``
    among them), each with more mass on the ball than ``world`` on its seed. On Breakout agents with
    ``frame`` seeds both seeds fell below the random policy by 10k-20k steps, their imagined returns
    holding (docs/breakout.md), so ``world`` stays the default."""
    attention_target: str = "motion"
    """Training target of the posterior's map: ``motion`` (cross-entropy against the detached,
    pooled frame difference; weight ``train.loss_scales.attention_target``), ``current_motion``
    (against ``min(|o_t - o_{t-1}|, |o_t - o_{t-2}|)``: a moving object's new place, not the one it
    left) or ``none``."""
    readout_position: bool = True
    """Give the posterior over z where the attention rests (the map's average of Fourier features of
    the cells), beside the attention-weighted readout. Breakout, 3 seeds: ball lift 77 +- 47 with it,
    40 +- 19 without (docs/attention.md)."""
    decoder_attention: bool = False
    """The image decoder also reads the attention map (``log(R^2 A_t)`` as a channel at 21x21,
    detached): the posterior's when filtering, the attention prior's prediction in imagination.
    Breakout: the ball drawn where it is instead of smeared along its paths (docs/attention.md, whose
    world-model measurements turn this and ``attention_detail`` on). Off by default: an agent's
    decoder that reads the map draws the ball from it, so the state the actor reads need not hold the
    ball (Breakout, probe R^2 of the ball's x from the state 0.09 with the map against 0.77 without at
    60k steps; eval 3.15 against 5.13 over 30k-60k: docs/breakout.md)."""
    attention_detail: bool = False
    """The posterior also says where inside each 4x4-pixel cell of its map the attention lies (a
    distribution over the cell's pixels from the cell's pixels and features, trained against where
    the current motion lies in the cell; weight ``train.loss_scales.attention_detail``), and the
    decoder reads it where the map attends: objects smaller than a cell (the Atari ball) drawn where
    they are. Breakout, 3 seeds: ball window ratio 0.30 +- 0.01 with it, 0.67 +- 0.03 without
    (docs/attention.md). Needs ``decoder_attention``; imagined states have none (an even spread)."""
    attention_detail_dropout: float = 0.5
    """With ``attention_detail``: the share of training frames decoded without the detail (as
    imagined frames are), so the decoder also draws moving things from the state and the map alone."""
    object_policy: bool = False
    """Attention-based action selection (seed 003's future extension 4): the actor and critic also
    read ``K`` object tokens by cross-attention from ``s = [h, z]`` (``aime.agent.object_reader``).
    The tokens are the posterior's slots (features and centres) as an object head predicts them from
    ``s``, so imagined states have them too; the head learns with the world model (weight
    ``train.loss_scales.objects``). Needs ``attention``."""
    precision_strength: float = 1.0
    """Precision weighting: reconstruction pixels count ``1 + strength * R^2 * A_t`` (0: off). 1 was
    chosen on Breakout: the paddle drawn (window error ratio 0.50 against 0.97 at 0 and 0.64 at 4)."""
    embed_dim: int = 0
    """Size of the encoder's global code; 0 means ``hidden``."""
    readout_dim: int = 32
    """Channels of the attention-weighted readout that the posterior over z gets (attention on)."""
    prior_position_bias: str = "none"
    """The attention prior's position code: ``none`` (absolute embedding only; keeps its attention on
    the fused kernel, several times faster on CPU) or ``relative`` (the seed's learnable 2-D bias)."""
    prior_token_pool: int = 3
    """The prior's self-attention runs among ``p x p``-pooled positions (3: 7x7 tokens, 81x fewer
    scores than the seed's global 441x441; 1: the seed's)."""
    attention_dropout: float = 0.0
    """Dropout inside the attention prior and on the posterior's slot features (the seed's 0.1 and
    0.2; 0 here: acting runs in eval mode, so states filtered with dropout would differ from those
    the policy acts on)."""


@dataclass
class LossScales:
    """Every loss weight in one place; a weight of 0 switches that term off."""

    reconstruction: float = 1.0
    kl: float = 1.0
    reward: float = 1.0
    continuation: float = 1.0
    attention_dynamics: float = 0.1
    slot_diversity: float = 0.01
    attention_prior: float = 0.1
    attention_map: float = 0.1
    attention_target: float = 1.0
    attention_detail: float = 1.0
    objects: float = 1.0
    """The object head's error against the posterior's slots (with ``model.object_policy``)."""
    open_loop: float = 1.0
    """Reconstruction from states imagined up to ``train.open_loop_horizon`` steps on."""
    slot_compactness: float = 0.0
    slot_grouping: float = 0.0
    """Motion grouping (``aime.world_model.grouping``): the slot of a moving cell should hold that
    cell's moving object and nothing else (its purity), and two moving things are pushed apart."""
    patch_coherence: float = 0.0
    spatial_diversity: float = 0.0
    nca_refinement: float = 0.0
    actor: float = 1.0
    critic: float = 1.0
    replay_value: float = 0.0
    """The critic's loss at the replayed posterior states, toward the real rewards' lambda-return
    bootstrapped by imagination (DreamerV3's replay value loss, which it weighs 0.3); 0: off."""


@dataclass
class TrainConfig:
    """Training schedule and optimisation."""

    steps: int = 100_000
    """Agent steps (each is ``frame_skip`` emulator frames) summed over training environments."""
    warmup_steps: int = 5_000
    """Random-action steps collected before training starts."""
    actor_start: int = 0
    """Agent steps before the actor learns (0: from the first update). Until then the actor acts with
    its initial, near-uniform policy while the world model learns, and the critic learns that
    policy's values. Measured on Breakout's seed 1 at 20,000 (docs/breakout.md): the world model drew
    the ball sooner, and the actor, once it learned, still settled on a habit within 1,500 steps."""
    batch_size: int = 16
    seq_len: int = 64
    train_ratio: float = 512.0
    """Replayed steps (batch_size * seq_len per update) per environment step."""
    model_lr: float = 1e-4
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    grad_clip: float = 1000.0
    horizon: int = 15
    """Imagination horizon H."""
    discount: float = 0.997
    lambda_: float = 0.95
    entropy: float = 3e-4
    free_bits: float = 1.0
    kl_balance: float = 0.8
    open_loop_horizon: int = 0
    """``k > 0``: the world model also learns to draw frames from states imagined ``1..k`` steps on
    from its posterior states with the actions taken (loss term ``open_loop``), not only the next
    step's prior through the KL. 0: off."""
    open_loop_decoder_grad: bool = True
    """Whether the ``open_loop`` term's gradients reach the decoder's parameters. ``False``: the
    decoder learns from the posterior's frames alone, and the term trains the transition, the prior
    and the start states to give states the decoder draws correctly."""
    imagination: str = "sample"
    """How the actor's imagined rollouts draw each step's ``z`` from the prior: ``sample`` (DreamerV3)
    or ``mode`` (the prior's most likely value: the rollout follows the deterministic path, which
    keeps a Breakout ball drawn about twice as long as samples do)."""
    replay_value_grad: bool = False
    """With ``loss_scales.replay_value > 0``: the replay value loss also trains the world model, its
    gradient reaching the posterior states (DreamerV3's ``repval_grad``), so the state is shaped by
    what the game really pays. Its term in the world model's update bootstraps from the slow
    critic's values (the imagined returns come after that update); logged as
    ``losses/replay_value_model``."""
    loss_scales: LossScales = field(default_factory=LossScales)
    max_nonfinite_updates: int = 20
    """Consecutive non-finite losses after which the run stops (with a checkpoint)."""
    compile: bool = False
    """``torch.compile`` the networks that run batched or once per step and the world model's time step (see
    ``aime.agent.agent.COMPILED`` and ``COMPILED_STEPS``)."""
    compile_world_model: bool = False
    """``torch.compile`` the world model's whole loss (``VRNN.loss``: the encoder, the time loop
    unrolled over the batch's ``T`` steps, the decoder and every term), forward and backward each one
    graph: far fewer, fused operations than the eager update runs. Compiling takes minutes the first
    time (7-14 at the ``cpu`` preset's T 16 on 2 CPU cores, more for larger ``T``; torch's on-disk
    cache shortens it for later runs of the same sizes), so it is for long runs: 1.40x faster
    updates on one thread of a loaded 2-core CPU, 1.08x on two free threads (docs/benchmarks.md)."""
    precision: str = "auto"
    """``bf16``: the world model's and the behaviour's networks run under bf16 autocast (losses,
    distributions, the return normaliser and optimiser state stay fp32); ``fp32``: no autocast;
    ``auto``: bf16 where the device computes it natively (CUDA with bf16, a CPU with AMX or
    AVX512-BF16), fp32 elsewhere (``aime.runtime.device.resolve_precision``)."""


@dataclass
class ReplayConfig:
    capacity: int = 100_000
    """Frames held in total across all environment streams."""
    prefetch: str = "auto"
    """``thread``: draw the next batch of a burst of updates on a worker thread while the current
    update runs (``aime.runtime.prefetch``; the batches are the same as without it); ``none``: draw
    each when it is needed; ``auto``: ``thread`` on CUDA, ``none`` on the CPU (where a draw is short
    next to an update)."""


@dataclass
class EvalConfig:
    every: int = 10_000
    """Evaluate every this many agent steps (0: only at the end)."""
    episodes: int = 10
    greedy: bool = True
    """Act with the policy's mode (True) or sample from it (False). The Atari presets sample: a greedy
    policy that never presses FIRE after a lost life (Breakout) plays on until the time limit."""
    max_steps: int = 27_000
    """Cut an evaluation episode after this many agent steps (0: no cap); the episode counts with its
    return so far and is reported (``eval/capped_episodes``, a line in the log). 27,000 agent steps
    are the protocol's 108,000-frame limit at frame skip 4; a policy that never presses FIRE would
    otherwise stall every evaluation until the environment's own limit."""


@dataclass
class LogConfig:
    logdir: str = ""
    """Run directory; empty means ``runs/{env}__{seed}__{time}``."""
    scalars_every: int = 1_000
    images_every: int = 10_000
    checkpoint_every: int = 10_000


@dataclass
class Config:
    """The whole configuration of a run."""

    seed: int = 0
    """Seeds environments (per env and per rank), model initialisation and replay sampling."""
    device: str = "auto"
    """``auto`` (cuda when present, else cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)


# Value choices checked after the tree is built: key path -> allowed values.
CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "model.latent": ("gaussian", "categorical", "stickbreaking"),
    "model.rnn": ("gru", "lstm"),
    "model.decoder": ("conv", "field", "nca"),
    "model.fpn_norm": ("group", "none"),
    "model.posterior_map": ("normalize", "softmax"),
    "model.attention_target": ("motion", "current_motion", "none"),
    "model.slot_position": ("learned", "fourier"),
    "model.slot_seeds": ("state", "frame"),
    "model.attention_grad": ("world", "own"),
    "model.prior_position_bias": ("none", "relative"),
    "train.precision": ("auto", "fp32", "bf16"),
    "train.imagination": ("sample", "mode"),
    "replay.prefetch": ("auto", "thread", "none"),
}
