"""AIME: a model-based RL agent whose VRNN world model carries an attention schema.

Subpackages (dependencies point one way, left to right):
``aime.nn`` <- ``aime.attention`` <- ``aime.world_model`` <- ``aime.agent`` <- ``aime.runtime``
(<- ``aime.bench``, ``aime.eval``, ``aime.experiments``). See docs/architecture.md.

The main entry points are available here, imported on first use so that ``import aime`` stays cheap::

    import aime
    cfg = aime.load_config(["debug"], ["model.deter=128"])   # typed configuration: presets, then overrides
    model = aime.VRNN.from_config(cfg.model, num_actions=4, train=cfg.train)
    agent = aime.Agent(cfg, num_actions=4)                    # world model + actor-critic
    agent, cfg = aime.load_agent("runs/Breakout-<time>")      # a trained agent and its configuration
"""

from __future__ import annotations

from aime._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "AttentionSchema": "aime.attention.schema",
    "VRNN": "aime.world_model.vrnn",
    "Agent": "aime.agent.agent",
    "Config": "aime.config",
    "load_config": "aime.config",
    "load_agent": "aime.runtime.checkpoint",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
