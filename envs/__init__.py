"""Environment construction for AIME (gymnasium + ale-py; no torch, nothing of ``aime``).

``make(name, **options)`` gives one environment, ``make_vector(name, num_envs, **options)`` a
gymnasium vector env; both follow the Atari-100k protocol for ALE games (uint8 ``[3, 84, 84]`` RGB,
frame skip 4 with max-pool, up to 30 no-op starts, no sticky actions, minimal action set, 108,000
frame limit, raw rewards) and also serve the built-in ``Catch`` game with the same API.
"""

from envs.atari import AtariEnv, AtariVectorEnv
from envs.catch import CatchEnv, CatchVectorEnv
from envs.options import AtariOptions, CatchOptions
from envs.registry import list_games, make, make_vector, resolve
from envs.single import SingleEnv

__all__ = [
    "AtariEnv",
    "AtariOptions",
    "AtariVectorEnv",
    "CatchEnv",
    "CatchOptions",
    "CatchVectorEnv",
    "SingleEnv",
    "list_games",
    "make",
    "make_vector",
    "resolve",
]
