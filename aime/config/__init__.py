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

The schema (the dataclasses, their defaults and docs) is :mod:`aime.config.schema`; building,
checking, saving and loading a configuration is :mod:`aime.config.loading`. Every name imports
from ``aime.config``.
"""

from aime.config.loading import (
    CONFIGS_DIR,
    RESUME_KEYS,
    apply_mapping,
    apply_override,
    apply_resume_overrides,
    available_presets,
    default_preset,
    describe,
    field_docs,
    flatten,
    get_value,
    load_config,
    load_config_file,
    parse_override,
    read_preset,
    read_yaml_mapping,
    save_config,
    to_dict,
    validate,
)
from aime.config.schema import (
    CHOICES,
    Config,
    ConfigError,
    EnvConfig,
    EvalConfig,
    LogConfig,
    LossScales,
    ModelConfig,
    ReplayConfig,
    TrainConfig,
)

__all__ = [
    "CHOICES",
    "CONFIGS_DIR",
    "RESUME_KEYS",
    "Config",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "LogConfig",
    "LossScales",
    "ModelConfig",
    "ReplayConfig",
    "TrainConfig",
    "apply_mapping",
    "apply_resume_overrides",
    "apply_override",
    "available_presets",
    "default_preset",
    "describe",
    "field_docs",
    "flatten",
    "get_value",
    "load_config",
    "load_config_file",
    "parse_override",
    "read_preset",
    "read_yaml_mapping",
    "save_config",
    "to_dict",
    "validate",
]
