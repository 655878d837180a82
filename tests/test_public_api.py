"""The public API: ``import aime`` and every subpackage's re-exports."""

import importlib
import subprocess
import sys

import pytest

SUBPACKAGES = [
    "aime.nn",
    "aime.attention",
    "aime.world_model",
    "aime.agent",
    "aime.runtime",
    "aime.eval",
    "aime.bench",
    "aime.experiments",
    "aime.nn.neural_field",
]


def test_top_level_names():
    import aime
    from aime import VRNN, Agent, AttentionSchema, Config, load_agent, load_config
    from aime.agent.agent import Agent as AgentDefined
    from aime.attention.schema import AttentionSchema as SchemaDefined
    from aime.config import load_config as load_config_defined
    from aime.runtime.checkpoint import load_agent as load_agent_defined
    from aime.world_model.vrnn import VRNN as VRNNDefined

    assert VRNN is VRNNDefined and aime.VRNN is VRNNDefined
    assert Agent is AgentDefined and AttentionSchema is SchemaDefined
    assert load_agent is load_agent_defined and load_config is load_config_defined
    assert isinstance(load_config(["debug"]), Config)
    assert {"VRNN", "Agent", "AttentionSchema", "load_agent", "load_config"} <= set(dir(aime))
    assert isinstance(aime.__version__, str)


def test_unknown_top_level_name_is_an_attribute_error():
    import aime

    with pytest.raises(AttributeError, match="no attribute 'Vrnn'"):
        aime.Vrnn  # noqa: B018 (the access is the test)


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_every_name_in_all_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} re-exports nothing"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_subpackage_imports_of_the_readme_kind():
    from aime.agent import Agent, Behavior, RandomPolicy  # noqa: F401
    from aime.attention import AttentionPosterior, AttentionPrior, AttentionSchema  # noqa: F401
    from aime.nn import ConvGRUCell, NeuralField, SlotAttention, SpatialNet  # noqa: F401
    from aime.runtime import ReplayBuffer, Trainer, load_agent, load_world_model  # noqa: F401
    from aime.world_model import DECODERS, LATENTS, VRNN  # noqa: F401
    from aime.world_model.vrnn import VRNN as VRNNDefined

    assert VRNN is VRNNDefined


def test_import_aime_is_cheap():
    """``import aime`` (and aime.config) must not import torch: the names above are imported on first use."""
    code = "import sys, aime, aime.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
