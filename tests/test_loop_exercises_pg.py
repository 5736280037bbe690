"""The loop exercise of chapter 06: ``checks.check_train_reinforce`` passes REINFORCE's training loop and
names the mistake of realistic wrong loops (each written as a learner would write it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_basics import checks
from rl_basics.course.checking import CheckFailed


def _loop(*, sign=1.0, zero_grad=True, returns="backward", weights="returns", reduce="sum", sample=True,
          gamma_power=False, probabilities=False, step_every_step=False, step=True, undiscounted_list=True,
          reset_each_episode=True, zero_between_backward_and_step=False):
    """REINFORCE's loop as a learner writes it, with the named mistakes switched on."""

    def train_reinforce(env, policy, optimizer, n_episodes, gamma):
        episode_returns = []
        obs, _ = env.reset()
        for episode in range(n_episodes):
            if reset_each_episode or episode == 0:
                obs, _ = env.reset() if episode else (obs, None)
            log_probs, rewards, done = [], [], False
            while not done:
                dist = policy(obs)
                action = dist.sample() if sample else dist.probs.argmax()
                obs, reward, terminated, truncated, _ = env.step(action.item())
                log_probs.append(dist.probs[action] if probabilities else dist.log_prob(action))
                rewards.append(reward)
                done = terminated or truncated
                if step_every_step:
                    optimizer.zero_grad()
                    (-log_probs[-1] * reward).backward()
                    optimizer.step()
            G, out = 0.0, []
            if returns == "backward":
                for r in reversed(rewards):
                    G = r + gamma * G
                    out.append(G)
                out = out[::-1]
            elif returns == "forward":
                for r in rewards:
                    G = r + gamma * G
                    out.append(G)
            elif returns == "undiscounted":
                for r in reversed(rewards):
                    G = r + G
                    out.append(G)
                out = out[::-1]
            if weights == "G_0":
                out = [out[0]] * len(out)
            elif weights == "rewards":
                out = rewards
            elif weights == "none":
                out = [1.0] * len(out)
            if gamma_power:
                out = [gamma**t * g for t, g in enumerate(out)]
            terms = torch.tensor(out) * torch.stack(log_probs)
            loss = -sign * (terms.sum() if reduce == "sum" else terms.mean())
            if step_every_step:
                pass
            elif step:
                if zero_grad:
                    optimizer.zero_grad()
                loss.backward()
                if zero_between_backward_and_step:
                    optimizer.zero_grad()
                optimizer.step()
            episode_returns.append(sum(rewards) if undiscounted_list else out[0])
        return episode_returns

    return train_reinforce


WRONG = {
    "check_train_reinforce": [
        ("gradient \\*descent\\* on the return", _loop(sign=-1.0)),
        ("optimizer.zero_grad\\(\\) before loss.backward\\(\\) in every episode", _loop(zero_grad=False)),
        ("computed forwards", _loop(returns="forward")),
        ("discount is missing", _loop(returns="undiscounted")),
        ("whole episode's return G_0", _loop(weights="G_0")),
        ("its own reward r_t alone", _loop(weights="rewards")),
        ("the returns are missing", _loop(weights="none")),
        ("average over the episode's steps", _loop(reduce="mean")),
        ("factor gamma\\*\\*t", _loop(gamma_power=True)),
        ("instead of its logarithm", _loop(probabilities=True)),
        ("not samples of the policy", _loop(sample=False)),
        ("optimizer steps in 15 episodes", _loop(step_every_step=True)),
        ("took 0 optimizer steps", _loop(step=False)),
        ("undiscounted returns", _loop(undiscounted_list=False)),
        ("had no gradient", _loop(zero_between_backward_and_step=True)),
        ("env.step\\(\\) after an episode had ended", _loop(reset_each_episode=False)),
    ],
}


@pytest.mark.parametrize("name, hint, wrong", [(n, h, w) for n, pairs in WRONG.items() for h, w in pairs],
                         ids=[f"{n}:{h}" for n, pairs in WRONG.items() for h, _ in pairs])
def test_check_names_the_mistake(name, hint, wrong):
    for seed in range(2):
        with pytest.raises(CheckFailed, match=hint):
            getattr(checks, name)(wrong, seed=seed)


def test_the_right_loop_passes_and_reports_its_learning(capsys):
    for seed in range(2):
        checks.check_train_reinforce(_loop(), seed=seed)
    out = capsys.readouterr().out
    assert out.count("✓ the REINFORCE training loop: all 115 updates") == 2 and "p* = 2 - sqrt(2)" in out


def test_the_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    checks.check_train_reinforce(_loop(), seed=0)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def _other_right_loop(env, policy, optimizer, n_episodes, gamma):
    """REINFORCE written differently: numpy sampling and returns, a float64 loss summed term by term."""
    episode_returns = []
    for _ in range(n_episodes):
        obs, _ = env.reset()
        log_probs, rewards, done = [], [], False
        while not done:
            dist = policy(obs)
            probs = dist.probs.detach().double().numpy()
            action = int(np.random.choice(2, p=probs / probs.sum()))
            obs, reward, terminated, truncated, _ = env.step(action)
            log_probs.append(dist.log_prob(torch.tensor(action)))
            rewards.append(reward)
            done = terminated or truncated
        returns = np.zeros(len(rewards))
        for t in reversed(range(len(rewards))):
            returns[t] = rewards[t] + (gamma * returns[t + 1] if t + 1 < len(rewards) else 0.0)
        loss = sum(-float(G) * log_prob.double() for G, log_prob in zip(returns, log_probs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        episode_returns.append(float(np.sum(rewards)))
    return np.array(episode_returns)


def test_a_right_loop_written_differently_passes():
    """The check needs no shared random draws: a loop that samples with numpy passes as well."""
    checks.check_train_reinforce(_other_right_loop, seed=3)
