"""The agents' shared math and plumbing (rl_basics.agents.losses, networks, rollout, on_policy, training,
checkpoints, and rl_basics.validation), checked against hand-computed values."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rl_basics.agents.checkpoints import load_checkpoint, save_checkpoint
from rl_basics.agents.losses import (
    compute_gae,
    explained_variance,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
)
from rl_basics.agents.networks import layer_init, load_actor, make_actor, make_critic
from rl_basics.agents.rollout import RolloutCollector, evaluate
from rl_basics.agents.training import TrainResult, check_finite


def t(values):
    return torch.tensor(values, dtype=torch.float32)


# --------------------------------------------------------------------------- GAE

# One sub-env, five steps, gamma 0.9, lambda 0.8: an episode that terminates at t=1,
# then one that is truncated at t=3, then one still running at the end of the rollout.
REWARDS = [1.0, 2.0, 3.0, 4.0, 5.0]
VALUES = [0.5, 1.0, 1.5, 2.0, 2.5]
NEXT_VALUES = [1.0, 9.0, 2.0, 7.0, 3.0]  # 9.0: V(terminal obs), must be ignored; 7.0: V(final obs) after truncation
TERMINATED = [0, 1, 0, 0, 0]
EPISODE_END = [0, 1, 0, 1, 0]
# Hand computation (gamma * lambda = 0.72):
#   delta = [1 + .9*1 - .5, 2 + 0 - 1, 3 + .9*2 - 1.5, 4 + .9*7 - 2, 5 + .9*3 - 2.5] = [1.4, 1.0, 3.3, 8.3, 5.2]
#   A4 = 5.2 (end of rollout: A5 = 0);  A3 = 8.3 (episode end cuts the recursion)
#   A2 = 3.3 + .72 * 8.3 = 9.276;  A1 = 1.0;  A0 = 1.4 + .72 * 1.0 = 2.12
EXPECTED_ADV = [2.12, 1.0, 9.276, 8.3, 5.2]
EXPECTED_RET = [a + v for a, v in zip(EXPECTED_ADV, VALUES)]


def test_gae_hand_computed_with_termination_and_truncation():
    adv, ret = compute_gae(t(REWARDS), t(VALUES), t(NEXT_VALUES), t(TERMINATED), t(EPISODE_END), 0.9, 0.8)
    torch.testing.assert_close(adv, t(EXPECTED_ADV))
    torch.testing.assert_close(ret, t(EXPECTED_RET))


def test_gae_columns_are_independent_and_time_is_axis_0():
    cols = [t(x) for x in (REWARDS, VALUES, NEXT_VALUES, TERMINATED, EPISODE_END)]
    # column 1 is column 0 reversed in reward only: a different, independent env
    two = [torch.stack([c, c.flip(0) if i == 0 else c], dim=1) for i, c in enumerate(cols)]
    adv, _ = compute_gae(*two, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv[:, 0], t(EXPECTED_ADV))
    single, _ = compute_gae(*[x[:, 1] for x in two], gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv[:, 1], single)


def test_gae_lambda_limits():
    args = [t(x) for x in (REWARDS, VALUES, NEXT_VALUES, TERMINATED, EPISODE_END)]
    adv0, _ = compute_gae(*args, gamma=0.9, lam=0.0)
    torch.testing.assert_close(adv0, t([1.4, 1.0, 3.3, 8.3, 5.2]))  # the TD errors
    _, ret1 = compute_gae(*args, gamma=0.9, lam=1.0)
    # lambda = 1: discounted rewards to the episode end, bootstrapped only on truncation / rollout end
    torch.testing.assert_close(ret1, t([1 + 0.9 * 2, 2.0, 3 + 0.9 * (4 + 0.9 * 7), 4 + 0.9 * 7, 5 + 0.9 * 3]))


@pytest.mark.parametrize("gamma, lam", [(1.1, 0.9), (0.9, -0.1), (0.9, 1.5)])
def test_gae_rejects_bad_coefficients(gamma, lam):
    args = [t(x) for x in (REWARDS, VALUES, NEXT_VALUES, TERMINATED, EPISODE_END)]
    with pytest.raises(ValueError):
        compute_gae(*args, gamma=gamma, lam=lam)


# --------------------------------------------------------------------------- losses


def test_ppo_policy_loss_hand_computed():
    ratio = t([1.5, 0.5, 1.1, 0.7])
    logp_new = ratio.log().requires_grad_()
    logp_old = torch.zeros(4)
    adv = t([1.0, -1.0, -2.0, 2.0])
    loss, stats = ppo_policy_loss(logp_new, logp_old, adv, clip_coef=0.2)
    # max(-A r, -A clip(r)): [max(-1.5, -1.2), max(.5, .8), max(2.2, 2.2), max(-1.4, -1.6)] = [-1.2, .8, 2.2, -1.4]
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 2.2 - 1.4) / 4, abs=1e-6)
    assert stats["clip_frac"].item() == pytest.approx(0.75)
    kl = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1, 0.7)]
    assert stats["approx_kl"].item() == pytest.approx(sum(kl) / 4, abs=1e-6)
    assert stats["ratio_mean"].item() == pytest.approx(0.95, abs=1e-6)
    loss.backward()
    # clipped entries get no gradient; unclipped ones get -A * ratio / 4
    torch.testing.assert_close(logp_new.grad, t([0.0, 0.0, 2 * 1.1 / 4, -2 * 0.7 / 4]))


def test_ppo_policy_loss_mask():
    ratio = t([1.5, 0.5, 1.1, 0.7])
    loss, _ = ppo_policy_loss(ratio.log(), torch.zeros(4), t([1.0, -1.0, -2.0, 2.0]), 0.2, mask=t([1, 1, 1, 0]))
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 2.2) / 3, abs=1e-6)
    with pytest.raises(ValueError):
        ppo_policy_loss(ratio.log(), torch.zeros(4), torch.ones(4), clip_coef=0.0)


def test_ppo_value_loss_hand_computed():
    v_new, v_old, ret = t([1.0, 2.0, 3.0]), t([0.5, 2.5, 3.1]), t([2.0, 1.0, 3.0])
    # unclipped (v - R)^2 = [1, 1, 0]; clipped v = [0.7, 2.3, 3.0] -> (v_c - R)^2 = [1.69, 1.69, 0]
    assert ppo_value_loss(v_new, v_old, ret, clip_coef=0.2).item() == pytest.approx(0.5 * 3.38 / 3)
    assert ppo_value_loss(v_new, v_old, ret).item() == pytest.approx(0.5 * 2 / 3)
    masked = ppo_value_loss(v_new, v_old, ret, clip_coef=0.2, mask=t([1, 0, 1]))
    assert masked.item() == pytest.approx(0.5 * 1.69 / 2)


def test_masked_statistics():
    x = t([1.0, 2.0, 3.0, 100.0])
    mask = t([1, 1, 1, 0])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    assert masked_mean(x).item() == pytest.approx(26.5)
    rows = masked_mean(torch.stack([x, x]), torch.stack([mask, torch.ones(4)]), dim=1)
    torch.testing.assert_close(rows, t([2.0, 26.5]))
    w = masked_whiten(x, mask)
    assert w[3].item() == 0.0  # invalid entries are zeroed ...
    assert masked_mean(w, mask).item() == pytest.approx(0.0, abs=1e-6)  # ... and do not shift the statistics
    assert w[:3].std().item() == pytest.approx(1.0, abs=1e-4)
    w_noshift = masked_whiten(x, mask, shift_mean=False)
    assert masked_mean(w_noshift, mask).item() == pytest.approx(2.0, abs=1e-5)


def test_explained_variance():
    target = t([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), target) == pytest.approx(0.0, abs=1e-6)
    assert explained_variance(-target, target) < 0
    masked = explained_variance(t([1.0, 2.0, 3.0, -50.0]), target, mask=t([1, 1, 1, 0]))
    assert masked == pytest.approx(1.0)
    assert math.isnan(explained_variance(target, torch.ones(4)))


def test_check_finite_names_quantity_and_update():
    check_finite("policy loss", torch.tensor(1.0), step=3)
    with pytest.raises(FloatingPointError, match=r"value loss .* update 7"):
        check_finite("value loss", torch.tensor(float("nan")), step=7)
    with pytest.raises(FloatingPointError, match="entropy"):
        check_finite("entropy", float("inf"), step=1)


# --------------------------------------------------------------------------- networks


def test_layer_init_is_orthogonal():
    layer = layer_init(torch.nn.Linear(8, 8), std=2.0, bias=0.5)
    torch.testing.assert_close(layer.weight @ layer.weight.T, 4.0 * torch.eye(8), atol=1e-5, rtol=0)
    assert torch.all(layer.bias == 0.5)


def test_categorical_actor_and_critic():
    obs_space = spaces.Box(-1, 1, (4,), np.float32)
    actor = make_actor(obs_space, spaces.Discrete(3))
    critic = make_critic(obs_space, hidden_sizes=(32,))
    obs = torch.randn(5, 4)
    dist = actor.distribution(obs)
    actions = dist.sample()
    assert actions.shape == (5,)
    assert dist.log_prob(actions).shape == (5,) and dist.entropy().shape == (5,)
    # output gain 0.01: the initial policy is close to uniform
    assert dist.entropy().mean().item() == pytest.approx(math.log(3), abs=1e-3)
    assert critic(obs).shape == (5,)
    assert actor.act(obs, greedy=True).shape == (5,)
    assert actor.act(obs[0].numpy()).shape == ()  # a single observation gives a single action


def test_gaussian_actor_sums_over_action_dims_and_clips():
    obs_space = spaces.Box(-1, 1, (3,), np.float32)
    act_space = spaces.Box(np.array([-2.0, -1.0], np.float32), np.array([2.0, 1.0], np.float32))
    actor = make_actor(obs_space, act_space)
    obs = torch.randn(6, 3)
    dist = actor.distribution(obs)
    a = dist.sample()
    assert a.shape == (6, 2) and dist.log_prob(a).shape == (6,) and dist.entropy().shape == (6,)
    per_dim = torch.distributions.Normal(dist.mean, dist.stddev).log_prob(a).sum(-1)
    torch.testing.assert_close(dist.log_prob(a), per_dim)
    # initial log-std 0: entropy of a unit Gaussian per dimension
    assert dist.entropy()[0].item() == pytest.approx(2 * 0.5 * math.log(2 * math.pi * math.e), abs=1e-5)
    env_a = actor.to_env_action(torch.tensor([[5.0, -5.0]]))
    np.testing.assert_allclose(env_a, [[2.0, -1.0]])
    assert env_a.dtype == np.float32
    assert act_space.contains(actor.act(obs[0]).numpy())


def test_discrete_observations_are_one_hot():
    actor = make_actor(spaces.Discrete(3), spaces.Discrete(2))
    dist = actor.distribution(torch.tensor([0, 2, 1]))
    assert dist.logits.shape == (3, 2)
    assert actor.act(torch.tensor(1)).shape == ()


@pytest.mark.parametrize(
    "space, name",
    [(spaces.MultiBinary(4), "MultiBinary"), (spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
     (spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2))), "Tuple")],
)
def test_unsupported_action_space_is_named(space, name):
    with pytest.raises(TypeError, match=name):
        make_actor(spaces.Box(-1, 1, (2,), np.float32), space)


def test_unsupported_observation_space_is_named():
    with pytest.raises(TypeError, match="MultiBinary"):
        make_critic(spaces.MultiBinary(3))


# --------------------------------------------------------------------------- rollouts


class CountingEnv(gym.Env):
    """Observation = steps taken in this episode, reward 1 per step; terminates after
    ``terminate_at`` steps (never when None). The action is ignored."""

    observation_space = spaces.Box(0.0, 1000.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, terminate_at=None):
        self.terminate_at = terminate_at
        self.count = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.count += 1
        terminated = self.terminate_at is not None and self.count >= self.terminate_at
        return np.array([self.count], np.float32), 1.0, terminated, False, {}


def counting_vector_env():
    """Sub-env 0 terminates every 3 steps; sub-env 1 is truncated by a 4-step time limit."""
    return gym.vector.SyncVectorEnv([
        lambda: CountingEnv(terminate_at=3),
        lambda: gym.wrappers.TimeLimit(CountingEnv(), max_episode_steps=4),
    ])


def test_rollout_marks_the_autoreset_step_invalid_and_bootstraps_from_the_final_obs():
    envs = counting_vector_env()
    actor = make_actor(CountingEnv.observation_space, CountingEnv.action_space)
    collector = RolloutCollector(envs, seed=0)
    rollout = collector.collect(actor, n_steps=10, critic=lambda obs: 10.0 * obs[:, 0])
    # env 0: episode ends at t=2 and t=6 -> t=3 and t=7 are autoreset steps
    # env 1: episode truncated at t=3 and t=8 -> t=4 and t=9 are autoreset steps
    expected_valid = np.ones((10, 2), np.float32)
    expected_valid[[3, 7], 0] = 0
    expected_valid[[4, 9], 1] = 0
    np.testing.assert_array_equal(rollout.valid.numpy(), expected_valid)
    np.testing.assert_array_equal(rollout.terminated[:, 0].nonzero().flatten().numpy(), [2, 6])
    np.testing.assert_array_equal(rollout.truncated[:, 1].nonzero().flatten().numpy(), [3, 8])
    assert rollout.rewards[3, 0] == 0 and rollout.rewards[4, 1] == 0  # autoreset steps pay nothing
    # the observation the autoreset step "acts" in is the final one; the next is the reset one
    assert rollout.obs[4, 1, 0] == 4.0 and rollout.obs[5, 1, 0] == 0.0
    # truncation bootstraps from V(final obs) = 10 * 4
    assert rollout.next_values[3, 1] == 40.0
    torch.testing.assert_close(rollout.values, 10.0 * rollout.obs[..., 0])
    assert collector.env_steps == 20
    assert collector.episode_returns == [3.0, 4.0, 3.0, 4.0]
    assert collector.episode_steps == [6, 8, 14, 18]
    # the next rollout continues where this one stopped: env 1's reset step was t=9, so it
    # starts from the reset observation; env 0 terminates at t=10 and resets at t=11
    nxt = collector.collect(actor, n_steps=2)
    assert nxt.obs[0, 1, 0] == 0.0
    assert nxt.terminated[0, 0] == 1.0
    assert nxt.valid.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    envs.close()


def test_rollout_rejects_other_autoreset_modes():
    envs = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="SAME_STEP"):
        RolloutCollector(envs)
    envs.close()


# --------------------------------------------------------------------------- evaluation and checkpoints


class ConstantActor:
    def __init__(self, action):
        self.action = action

    def act(self, obs, greedy=False):
        return torch.full((obs.shape[0],), self.action, dtype=torch.int64)


def test_evaluate_constant_policy_on_cartpole():
    mean, std = evaluate(ConstantActor(1), "CartPole-v1", n_episodes=10, seed=3)
    assert 8 <= mean <= 12 and std < 3  # always pushing right topples the pole in about 9-10 steps
    assert evaluate(ConstantActor(1), "CartPole-v1", n_episodes=10, seed=3) == (mean, std)


def test_evaluate_is_reproducible_and_leaves_the_global_rng_alone():
    actor = make_actor(spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    factory = lambda: gym.make("CartPole-v1")  # noqa: E731
    sampled = evaluate(actor, factory, n_episodes=5, greedy=False, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert evaluate(actor, factory, n_episodes=5, greedy=False, seed=1) == sampled
    assert evaluate(actor, "CartPole-v1", n_episodes=5, greedy=False, seed=1) == evaluate(
        actor, "CartPole-v1", n_episodes=5, greedy=False, seed=1)


def test_checkpoint_round_trip_and_rng(tmp_path):
    obs_space, act_space = spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2)
    actor = make_actor(obs_space, act_space, hidden_sizes=(16,))
    result = TrainResult(actor=actor, history={"episode_returns": np.array([1.0, 2.0])},
                              config={"hidden_sizes": (16,)}, seed=5)
    path = result.save(tmp_path / "run" / "agent.pt")
    torch.manual_seed(1)
    np.random.seed(1)
    save_checkpoint(tmp_path / "rng.pt", step=3)
    expected = (torch.rand(3), np.random.rand(3))
    state = load_checkpoint(tmp_path / "rng.pt", restore_rng=True)
    assert state["step"] == 3
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    loaded = load_actor(path, obs_space, act_space)
    for p, q in zip(actor.parameters(), loaded.parameters()):
        assert torch.equal(p, q)
    assert load_checkpoint(path)["history"]["episode_returns"].tolist() == [1.0, 2.0]


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", step=1)
    with pytest.raises(Exception):
        save_checkpoint(path, step=2, bad=lambda: None)  # a lambda cannot be pickled
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind
