"""Behaviour learning and acting: the ``Agent`` (world model + actor-critic learned in imagination),
its ``Behavior`` (actor, critic, slow critic, lambda-returns, return normalisation), the
object-reading networks of attention-based action selection and the ``RandomPolicy`` baseline."""

from aime.agent.agent import Agent
from aime.agent.behavior import Behavior, ReturnNormalizer, actor_loss, critic_loss, lambda_return
from aime.agent.object_reader import ObjectMLP, ObjectReader
from aime.agent.random_policy import RandomPolicy

__all__ = [
    "Agent",
    "Behavior",
    "ObjectMLP",
    "ObjectReader",
    "RandomPolicy",
    "ReturnNormalizer",
    "actor_loss",
    "critic_loss",
    "lambda_return",
]
