"""Evaluation of what the world model and its attention schema do, against ground truth.

``aime.eval.objects``: attention lift, best-slot lift and centroid error, and object-window error
ratios of reconstructions and open-loop predictions, on frames with OCAtari object boxes.

``aime.eval.model_report``: a trained agent's world model and critic on its own newest experience
(reward events caught, the continue head at terminals, the value against the returns that followed,
the policy's action shares); ``scripts/model_report.py``. ``aime.eval.tracking``: does a Breakout
policy keep its paddle under the ball (OCAtari's boxes)? ``aime.eval.play_history``: how a run's
play changed over training, from its replay (episode lengths and returns, action shares, the
Breakout paddle against a wall); ``scripts/play_history.py``. ``aime.eval.probes``: can the ball
and the paddle be read from the state ``[h, z]`` the actor reads (probes fitted to OCAtari's box
centres); ``scripts/probe_latents.py``. ``aime.eval.imagined_play``: what a world model's
imagination pays scripted Breakout policies (follow the ball, hold a wall) against what the game
pays them; ``scripts/imagined_play.py`` and ``scripts/refit_world_model.py``.
"""

from aime.eval.imagined_play import game_play, imagined_play, red_positions, scripted_policy
from aime.eval.model_report import discounted_returns, filter_rows, model_report
from aime.eval.objects import ObjectData, cell_oracle, evaluate_objects, format_seed_table, format_table
from aime.eval.play_history import breakout_paddle, episode_history, paddle_at_wall
from aime.eval.probes import latent_states, object_centres, probe_error
from aime.eval.tracking import agent_policy, paddle_tracking

__all__ = [
    "ObjectData",
    "agent_policy",
    "breakout_paddle",
    "cell_oracle",
    "discounted_returns",
    "episode_history",
    "evaluate_objects",
    "filter_rows",
    "format_seed_table",
    "format_table",
    "game_play",
    "imagined_play",
    "latent_states",
    "model_report",
    "object_centres",
    "paddle_at_wall",
    "paddle_tracking",
    "probe_error",
    "red_positions",
    "scripted_policy",
]
