"""Building a configuration: YAML presets applied in order, ``key=value`` overrides, validation,
saving and loading a run's ``config.yaml``, and the table of every key that ``--help`` shows."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from aime.config.schema import CHOICES, Config, ConfigError

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


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


RESUME_KEYS = (
    "train.compile",
    "train.compile_world_model",
    "log.scalars_every",
    "log.images_every",
    "log.checkpoint_every",
)
"""The keys a resumed run may change (``train_agent.py --resume DIR --set KEY=VALUE``): how the
update is computed and how often the run reports and saves, never what it learns from or with.
(``train.steps`` changes with ``--steps``.)"""


def apply_resume_overrides(cfg: Config, overrides: Sequence[str]) -> list[str]:
    """Apply ``key=value`` overrides of :data:`RESUME_KEYS` to a resumed run's ``cfg`` in place and
    return the ``key=value`` of each one that changed a value.

    Raises:
        ConfigError: an override of any other key (it would change what the saved run is), or a
            malformed or mistyped one.
    """
    changed = []
    for text in overrides:
        key, _ = parse_override(text)
        if key not in RESUME_KEYS:
            raise ConfigError(
                f"--resume continues a run with its saved configuration; --set may change only "
                f"{', '.join(RESUME_KEYS)} (and --steps the length), got {key!r}"
            )
        before = get_value(cfg, key)
        apply_override(cfg, text)
        if get_value(cfg, key) != before:
            changed.append(f"{key}={get_value(cfg, key)}")
    validate(cfg)
    return changed


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
        "model.readout_dim",
        "model.prior_token_pool",
        "model.slot_iters",
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
        "train.actor_start",
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
        "train.open_loop_horizon",
        "model.precision_strength",
        "model.embed_dim",
    ]
    for key in positive:
        if get_value(cfg, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {get_value(cfg, key)!r}")
    for key in non_negative:
        if get_value(cfg, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {get_value(cfg, key)!r}")
    if cfg.train.replay_value_grad and cfg.train.loss_scales.replay_value <= 0:
        raise ConfigError(
            "config key 'train.replay_value_grad' needs 'train.loss_scales.replay_value' > 0 (the term's weight), "
            f"got {cfg.train.loss_scales.replay_value!r}"
        )
    if not 0.0 < cfg.model.attention_loss_fraction <= 1.0:
        raise ConfigError(
            f"config key 'model.attention_loss_fraction' must lie in (0, 1], got {cfg.model.attention_loss_fraction!r}"
        )
    size, res = cfg.model.image_size, cfg.model.attention_resolution
    if size < 8 or size % 4 or (size // 4) % 3 and (size // 4) % 2:
        raise ConfigError(
            f"config key 'model.image_size' must be a multiple of 4, at least 8, whose quarter is a multiple of "
            f"2 or 3 (84, 64, 96, ...), got {size!r}"
        )
    if res != size // 4:
        raise ConfigError(
            f"config key 'model.attention_resolution' must be image_size / 4 = {size // 4} "
            f"(the feature pyramid downsamples by 4), got {res!r}"
        )
    if not 0.0 <= cfg.model.attention_dropout < 1.0:
        value = cfg.model.attention_dropout
        raise ConfigError(f"config key 'model.attention_dropout' must lie in [0, 1), got {value!r}")
    if cfg.model.attention and cfg.model.attention_detail and not cfg.model.decoder_attention:
        raise ConfigError(
            "config key 'model.attention_detail' needs 'model.decoder_attention: true' (the decoder reads the "
            "detail with the map); set model.attention_detail=false too"
        )
    if cfg.model.attention and cfg.model.decoder == "field" and cfg.model.decoder_attention:
        raise ConfigError(
            "config key 'model.decoder_attention' needs the 'conv' or 'nca' decoder, got 'field': with the field "
            "decoder set model.decoder_attention=false and model.attention_detail=false"
        )
    if cfg.model.attention and cfg.model.slot_seeds == "frame" and cfg.model.slot_persistence:
        raise ConfigError(
            "config key 'model.slot_seeds: frame' runs the posterior over all frames before the time loop, so it "
            "cannot carry slots from step to step: set model.slot_persistence=false, or model.slot_seeds=state"
        )
    if cfg.model.object_policy and not cfg.model.attention:
        raise ConfigError(
            "config key 'model.object_policy' needs 'model.attention: true' (the object tokens are the attention "
            "posterior's slots); set model.object_policy=false for the ablation"
        )
    if cfg.train.open_loop_horizon >= cfg.train.seq_len:
        raise ConfigError(
            f"config key 'train.open_loop_horizon' must be below train.seq_len ({cfg.train.seq_len}): the frames it "
            f"draws lie in the same window; got {cfg.train.open_loop_horizon!r}"
        )
    for key in (
        "env.repeat_action_probability",
        "train.kl_balance",
        "train.lambda_",
        "train.discount",
        "model.attention_detail_dropout",
    ):
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
