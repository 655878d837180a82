"""AIME: a model-based RL agent whose VRNN world model carries an attention schema.

Subpackages (dependencies point one way, left to right):
``aime.nn`` <- ``aime.attention`` <- ``aime.world_model`` <- ``aime.agent`` <- ``aime.runtime``.
"""

__version__ = "0.1.0"
