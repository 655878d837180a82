"""Typed configuration: dataclasses, YAML presets applied in order, and ``key=value`` overrides.

A configuration is a tree of dataclasses rooted at :class:`Config`. Presets are YAML files in
``configs/`` holding a partial tree; they are applied in the order given (later wins), then the
command-line overrides (``model.deter=256``). Every key is checked against the dataclass fields: an
unknown key raises :class:`ConfigError` naming the closest valid keys, and a value of the wrong type
raises naming the expected type. The resolved configuration is saved with each run
(:func:`save_config`) and can be loaded back exactly (:func:`load_config_file`).

Example::

    cfg = load_config(["cpu"], ["model.deter=256", "train.batch_size=8"])
    cfg.model.deter  # 256
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


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
    """Side of the attention maps."""
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
    attention_target: str = "motion"
    """Training target of the posterior's map: ``motion`` (cross-entropy against the detached,
    pooled frame difference; weight ``train.loss_scales.attention_target``), ``current_motion``
    (against ``min(|o_t - o_{t-1}|, |o_t - o_{t-2}|)``: a moving object's new place, not the one it
    left) or ``none``."""
    readout_position: bool = True
    """Give the posterior over z where the attention rests (the map's average of Fourier features of
    the cells), beside the attention-weighted readout. Breakout, 3 seeds: ball lift 77 +- 47 with it,
    40 +- 19 without (docs/attention.md)."""
    decoder_attention: bool = True
    """The image decoder also reads the attention map (``log(R^2 A_t)`` as a channel at 21x21,
    detached): the posterior's when filtering, the attention prior's prediction in imagination.
    Breakout: the ball drawn where it is instead of smeared along its paths (docs/attention.md)."""
    precision_strength: float = 1.0
    """Precision weighting: reconstruction pixels count ``1 + strength * R^2 * A_t`` (0: off). 1 was
    chosen on Breakout: the paddle drawn (window error ratio 0.50 against 0.97 at 0 and 0.64 at 4)."""


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
    slot_compactness: float = 0.0
    slot_grouping: float = 0.0
    """Motion grouping (``aime.world_model.grouping``): cells that move together share a slot, a
    moving cell and the static scene or another moving thing do not."""
    patch_coherence: float = 0.0
    spatial_diversity: float = 0.0
    nca_refinement: float = 0.0
    actor: float = 1.0
    critic: float = 1.0


@dataclass
class TrainConfig:
    """Training schedule and optimisation."""

    steps: int = 100_000
    """Agent steps (each is ``frame_skip`` emulator frames) summed over training environments."""
    warmup_steps: int = 5_000
    """Random-action steps collected before training starts."""
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
    loss_scales: LossScales = field(default_factory=LossScales)
    max_nonfinite_updates: int = 20
    """Consecutive non-finite losses after which the run stops (with a checkpoint)."""
    compile: bool = False
    """``torch.compile`` the networks that run batched or once per step (see ``aime.agent.agent.COMPILED``)."""
    precision: str = "auto"
    """``bf16``: the world model's and the behaviour's networks run under bf16 autocast (losses,
    distributions, the return normaliser and optimiser state stay fp32); ``fp32``: no autocast;
    ``auto``: bf16 where the device computes it natively (CUDA with bf16, a CPU with AMX or
    AVX512-BF16), fp32 elsewhere (``aime.runtime.device.resolve_precision``)."""


@dataclass
class ReplayConfig:
    capacity: int = 100_000
    """Frames held in total across all environment streams."""


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
    "train.precision": ("auto", "fp32", "bf16"),
}


def available_presets() -> list[str]:
    """Names of the YAML presets in ``configs/``."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def default_preset(cuda_available: bool) -> str:
    """The preset used when none is given: ``atari100k`` on CUDA, ``cpu`` otherwise."""
    return "atari100k" if cuda_available else "cpu"


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted leaf and branch keys of a dataclass tree (for suggestions)."""
    out = []
    for name, tp in _field_types(cls).items():
        key = f"{prefix}{name}"
        out.append(key)
        if dataclasses.is_dataclass(tp):
            out.extend(_keys(tp, key + "."))
    return out


def _unknown_key(key: str, valid: Iterable[str], where: str) -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r} ({where}).{hint} Valid keys: {', '.join(valid)}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: expected {tp}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        (arg, *_) = typing.get_args(tp) or (Any,)
        return origin(_coerce(v, arg, f"{key}[{i}]") for i, v in enumerate(value))
    elif tp is Any:
        return value
    name = getattr(tp, "__name__", str(tp))
    raise ConfigError(f"config key {key!r}: expected {name}, got {value!r} ({type(value).__name__})")


def apply_mapping(node: Any, values: Mapping[str, Any], prefix: str = "", where: str = "preset") -> None:
    """Write a nested mapping into a dataclass tree in place, checking keys and types."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping at {prefix or 'the top level'}, got {values!r}")
    types_ = _field_types(type(node))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types_:
            raise _unknown_key(key, [f"{prefix}{k}" for k in types_], where)
        tp = types_[name]
        if dataclasses.is_dataclass(tp):
            apply_mapping(getattr(node, name), value, key + ".", where)
        else:
            setattr(node, name, _coerce(value, tp, key))


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is parsed as YAML (``8``, ``1e-4``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. model.deter=256")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key, value


def _suggest(key: str, valid: Sequence[str]) -> list[str]:
    """Close matches for a dotted key, by the whole key and by its last part (``deter``)."""
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    leaf = key.split(".")[-1]
    close += [k for k in valid if k.split(".")[-1] == leaf and k not in close]
    return close[:5]


def apply_override(cfg: Config, text: str) -> None:
    """Apply one ``dotted.key=value`` override to ``cfg`` in place."""
    key, value = parse_override(text)
    valid = _keys(Config)
    if key not in valid:
        close = _suggest(key, valid)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown config key {key!r} in override {text!r}.{hint}")
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    apply_mapping(cfg, nested, where=f"override {text!r}")


def read_preset(name: str) -> dict:
    """The mapping stored in ``configs/<name>.yaml`` (or a path to a YAML file)."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIGS_DIR / f"{name}.yaml"
    if not path.is_file():
        names = available_presets()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown preset {name!r}.{hint} Available presets: {', '.join(names)}")
    return read_yaml_mapping(path, "preset")


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping a YAML file holds, read safely (plain values only, never Python objects).

    Anything else -- unreadable, not UTF-8, a YAML syntax error, a tag such as ``!!python/object``,
    not a mapping -- raises :class:`ConfigError` in one line that names the file and, where YAML
    knows it, the line and column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {error.start}): damaged?") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {_yaml_problem(error)}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What a YAML error says, in one line, with its position (1-based) where known."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        problem = error.problem
        if error.problem_mark is not None:
            problem += f" at line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1}"
    else:  # e.g. a ReaderError: "unacceptable character #x0001 ... position 3" over two lines
        problem = " ".join(str(error).split())
    if "constructor for the tag" in problem:  # e.g. !!python/object/apply, which safe loading refuses
        problem += "; only plain YAML values are allowed (mappings, lists, numbers, strings, booleans)"
    return " ".join(problem.split())


def validate(cfg: Config) -> None:
    """Check value ranges and choices that types alone cannot express."""
    for key, allowed in CHOICES.items():
        value = get_value(cfg, key)
        base = value.split(":")[0] if key == "device" else value
        if base not in allowed:
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {', '.join(allowed)}")
    positive = [
        "env.num_envs",
        "env.eval_envs",
        "env.frame_skip",
        "env.max_episode_frames",
        "model.deter",
        "model.stoch",
        "model.classes",
        "model.hidden",
        "model.cnn_depth",
        "model.context_dim",
        "model.num_slots",
        "model.mixture_components",
        "train.batch_size",
        "train.seq_len",
        "train.horizon",
        "replay.capacity",
        "train.max_nonfinite_updates",
    ]
    non_negative = [
        "env.noop_max",
        "train.steps",
        "train.warmup_steps",
        "train.train_ratio",
        "eval.every",
        "eval.episodes",
        "eval.max_steps",
        "log.scalars_every",
        "log.images_every",
        "log.checkpoint_every",
        "train.model_lr",
        "train.actor_lr",
        "train.critic_lr",
        "train.entropy",
        "train.free_bits",
        "model.precision_strength",
    ]
    for key in positive:
        if get_value(cfg, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {get_value(cfg, key)!r}")
    for key in non_negative:
        if get_value(cfg, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {get_value(cfg, key)!r}")
    if not 0.0 < cfg.model.attention_loss_fraction <= 1.0:
        raise ConfigError(
            f"config key 'model.attention_loss_fraction' must lie in (0, 1], got {cfg.model.attention_loss_fraction!r}"
        )
    for key in ("env.repeat_action_probability", "train.kl_balance", "train.lambda_", "train.discount"):
        if not 0.0 <= get_value(cfg, key) <= 1.0:
            raise ConfigError(f"config key {key!r} must lie in [0, 1], got {get_value(cfg, key)!r}")
    for name, value in dataclasses.asdict(cfg.train.loss_scales).items():
        if value < 0:
            raise ConfigError(f"config key 'train.loss_scales.{name}' must be >= 0, got {value!r}")
    rows = cfg.replay.capacity // cfg.env.num_envs  # each environment stream's ring
    if rows < cfg.train.seq_len:
        raise ConfigError(
            f"config key 'replay.capacity' ({cfg.replay.capacity}) gives each of the {cfg.env.num_envs} environment "
            f"streams {rows} rows, fewer than one training window (train.seq_len {cfg.train.seq_len}): nothing could "
            f"ever be trained; the minimum is {cfg.env.num_envs * cfg.train.seq_len} (env.num_envs x train.seq_len)"
        )


def get_value(cfg: Any, key: str) -> Any:
    """Read a dotted key from a dataclass tree; unknown keys raise with suggestions."""
    node = cfg
    for i, part in enumerate(key.split(".")):
        names = [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []
        if part not in names:
            prefix = ".".join(key.split(".")[:i])
            raise _unknown_key(key, [f"{prefix}.{n}" if prefix else n for n in names], "lookup")
        node = getattr(node, part)
    return node


def load_config(presets: Sequence[str] = (), overrides: Sequence[str] = ()) -> Config:
    """Defaults, then each preset in order, then each ``key=value`` override; validated."""
    cfg = Config()
    for name in presets:
        apply_mapping(cfg, read_preset(name), where=f"preset {name!r}")
    for text in overrides:
        apply_override(cfg, text)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    """The configuration as a plain nested dict."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (loadable with :func:`load_config_file`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_config_file(path: str | Path) -> Config:
    """Read a configuration saved by :func:`save_config` (defaults fill keys it lacks)."""
    data = read_yaml_mapping(path, "config file")
    cfg = Config()
    try:
        apply_mapping(cfg, data, where=f"config file {str(path)!r}")
        validate(cfg)
    except ConfigError as error:
        if str(path) in str(error):
            raise
        raise ConfigError(f"config file {str(path)!r}: {error}") from error
    return cfg


def flatten(cfg: Config) -> dict[str, Any]:
    """``{"model.deter": 512, ...}``: the leaves of the tree with dotted keys (for logging)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = value

    walk(cfg, "")
    return out


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a config dataclass (shown by ``--help``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe(cfg: Config | None = None) -> list[tuple[str, Any, str]]:
    """``(dotted key, value, doc)`` for every leaf, in declaration order."""
    cfg = cfg or Config()
    rows: list[tuple[str, Any, str]] = []

    def walk(node: Any, prefix: str) -> None:
        docs = field_docs(type(node))
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                rows.append((f"{prefix}{f.name}", value, docs.get(f.name, "")))

    walk(cfg, "")
    return rows
