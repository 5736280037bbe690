"""A2C: hyperparameter validation, bad input, n-step returns, seeding, the Box path.
(CartPole-v1 to 475 is asserted in notebook 07.)"""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_basics.agents import a2c
from rl_basics.agents.networks import make_actor
from rl_basics.agents.on_policy import make_batch
from rl_basics.agents.rollout import RolloutCollector, evaluate
from tests.test_agents_core import CountingEnv, counting_vector_env
from tests.test_ppo import MultiBinaryEnv, NaNEnv

TINY = dict(total_timesteps=256, num_envs=4, n_steps=8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gae_lambda=1.5), "gae_lambda"),
        (dict(gae_lambda=-0.1), "gae_lambda"),
        (dict(gamma=-0.1), "gamma"),
        (dict(n_steps=0), "n_steps"),
        (dict(learning_rate=-1e-3), "learning_rate"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(vf_coef=-1.0), "vf_coef"),
        (dict(normalize_rewards=True), "reward_scale=1.0"),  # A2C's default reward_scale is 0.1
    ],
)
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        a2c.A2CConfig(**kwargs)


def test_unsupported_action_space_is_named():
    with pytest.raises(TypeError, match="MultiBinary"):
        a2c.train(MultiBinaryEnv, a2c.A2CConfig(**TINY), progress=False)


def test_nan_stops_training_naming_update_and_quantity():
    with pytest.raises(FloatingPointError, match=r"A2C (policy|value) loss is not finite .* at update 1"):
        a2c.train(lambda: NaNEnv(after=0, bad_obs=True), a2c.A2CConfig(**TINY), progress=False)


def test_lambda_one_gives_n_step_returns():
    """With gae_lambda = 1 the return target is the n-step return, cut at episode ends and
    bootstrapped from V(final obs) on truncation and from V(s_n) at the end of the rollout."""
    envs = counting_vector_env()
    actor = make_actor(CountingEnv.observation_space, CountingEnv.action_space)
    v = lambda obs: 0.5 * obs[:, 0]  # noqa: E731  (a fixed "critic": V(count) = count / 2)
    rollout = RolloutCollector(envs, seed=0).collect(actor, n_steps=6, critic=v)
    envs.close()
    batch = make_batch(rollout, gamma=0.9, gae_lambda=1.0)
    # env 0 (terminates after 3 steps; t=3 is the autoreset step): steps t=0,1,2 then t=4,5
    # env 1 (truncated after 4 steps; t=4 is the autoreset step): steps t=0..3 then t=5
    g = 0.9
    env0 = [1 + g + g**2, 1 + g, 1.0, 1 + g + g**2, 1 + g]  # t=5: bootstrap from V(count=2) = 1
    env1 = [1 + g + g**2 + g**3 * (1 + g * 2), 1 + g + g**2 * (1 + g * 2), 1 + g * (1 + g * 2), 1 + g * 2, 1 + g * 0.5]
    # the batch is time-major over (t, env) with the autoreset steps (t=3 env 0, t=4 env 1) removed
    order = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 1), (4, 0), (5, 0), (5, 1)]
    expected = {(t, 0): r for t, r in zip([0, 1, 2, 4, 5], env0)} | {(t, 1): r for t, r in zip([0, 1, 2, 3, 5], env1)}
    torch.testing.assert_close(batch.returns, torch.tensor([expected[k] for k in order]))


def test_seeded_runs_are_identical():
    a = a2c.train("CartPole-v1", a2c.A2CConfig(**TINY), seed=1, progress=False)
    b = a2c.train("CartPole-v1", a2c.A2CConfig(**TINY), seed=1, progress=False)
    np.testing.assert_array_equal(a.history["policy_loss"], b.history["policy_loss"])
    np.testing.assert_array_equal(a.history["episode_returns"], b.history["episode_returns"])
    assert a.history["update_steps"].tolist() == [32 * (i + 1) for i in range(8)]


def test_box_actions_and_rmsprop_run():
    result = a2c.train("Pendulum-v1", a2c.A2CConfig(**TINY, optimizer="rmsprop"), progress=False)
    assert result.actor.continuous
    assert np.isfinite(result.history["value_loss"]).all()
    mean, _ = evaluate(result.actor, "Pendulum-v1", n_episodes=2)
    assert np.isfinite(mean)


def test_accepts_a_vector_env_and_a_single_env():
    envs = gym.make_vec("CartPole-v1", 3, vectorization_mode="sync")
    result = a2c.train(envs, a2c.A2CConfig(**TINY), progress=False)
    assert result.history["update_steps"][0] == 3 * 8
    envs.close()
    single = a2c.train(gym.make("CartPole-v1"), a2c.A2CConfig(**{**TINY, "num_envs": 1}), progress=False)
    assert single.history["update_steps"][0] == 8


def test_the_tuned_defaults():
    """A2C's defaults were tuned (see A2CConfig); some sit on OnPolicyConfig, so a change there must not move them."""
    assert dataclasses.asdict(a2c.A2CConfig()) == dict(
        total_timesteps=150_000, num_envs=8, n_steps=16, learning_rate=1e-3, anneal_lr=True, reward_scale=0.1,
        gamma=0.99, gae_lambda=0.95, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantages=True,
        hidden_sizes=(64, 64), normalize_obs=False, normalize_rewards=False, optimizer="adam",
    )
