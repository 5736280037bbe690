"""The exercise checks reject realistic wrong code on every seed, and every hint they print is true.

A hint is claimed only when it explains every failing case (rl_basics/course/checking.py); otherwise
the message shows the expected and the returned values. The wrong solutions here are of the kinds an
independent mutation test found slipping through on some seeds or getting false hints: a self-loop
bug, a terminal bug, a naive log(sigmoid), a tuple-state bug, a wrong axis, a scalar loss scaled
wrong, a SARSA bug that is not Q-learning's, a batch of one, a sequence of length one.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rl_basics import checks as rl_checks
from rl_basics.course import exercise_notebooks as ex
from rl_basics.course import notebook_files as nbf
from rl_basics.course.checking import Case, CheckFailed, Mistake, check_function
from rlhf import checks as lm_checks

SEEDS = range(8)
CHECKS = {name: getattr(m, name) for m in (rl_checks, lm_checks) for name in m.__all__ if name.startswith("check_")}


def _messages(name: str, fn) -> list[str]:
    """The check's message for ``fn`` on every seed; fails the test if some seed accepts ``fn``."""
    messages = []
    for seed in SEEDS:
        with pytest.raises(CheckFailed) as info, contextlib.redirect_stdout(io.StringIO()):
            CHECKS[name](fn, seed=seed)
        messages.append(str(info.value))
    return messages


# ----------------------------------------------------------------------------- realistic wrong solutions


def _td0_two_steps(V, s, r, s_next, terminated, alpha, gamma):
    """Right unless s_next == s: the second half-step reads the already moved V[s]."""
    V[s] += alpha * (r - V[s])
    if not terminated:
        V[s] += alpha * gamma * V[s_next]
    return V


def _q_learning_two_steps(Q, s, a, r, s_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r - Q[s, a])
    if not terminated:
        Q[s, a] += alpha * gamma * Q[s_next].max()
    return Q


def _sarsa_two_steps(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r - Q[s, a])
    if not terminated:
        Q[s, a] += alpha * gamma * Q[s_next, a_next]
    return Q


def _sarsa_mean(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    """Bootstraps from the uniform average of Q[s_next]: wrong, but not Q-learning's max."""
    Q[s, a] += alpha * (r + gamma * (1 - terminated) * Q[s_next].mean() - Q[s, a])
    return Q


def _sarsa_current_action(Q, s, a, r, s_next, a_next, terminated, alpha, gamma):
    Q[s, a] += alpha * (r + gamma * (1 - terminated) * Q[s_next, a] - Q[s, a])
    return Q


def _greedy_through_terminals(model, V, gamma):
    return np.eye(model.n_actions)[(model.rewards + gamma * model.transitions @ V).argmax(1)]


def _first_visit_argmax(states, rewards, gamma):
    """Right for integer states; for tuples ``arr == s`` compares the numbers one by one."""
    G, running = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        G[t] = running
    arr = np.asarray(states)
    return {s: G[int(np.argmax(arr == s))] for s in dict.fromkeys(states)}


def _sequence_logprob_axis0(logits, input_ids, mask, temperature):
    logp = F.log_softmax(logits[:, :-1] / temperature, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (logp * mask[:, 1:]).sum(0)


def _sequence_logprob_squeezed(logits, input_ids, mask, temperature):
    logp = F.log_softmax(logits[:, :-1] / temperature, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (logp * mask[:, 1:]).sum(-1).squeeze()


def _reward_to_go_short(rewards, dones, gamma):
    out, G = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        G = rewards[t] + (0.0 if dones[t] else gamma * G)
        out[t] = G
    return out[:-1]


def _reinforce_squeezed(log_probs, returns, baseline, valid):
    """Right unless T = 1: squeeze() then drops the time axis and sum(0) sums over the episodes."""
    return -(valid * (returns - baseline.detach()) * log_probs).squeeze().sum(0).mean()


WRONG = [
    # (check, wrong solution, fragments the message must hold, fragments it must not hold)
    ("check_td0_update", _td0_two_steps, ["expected:", "got:"], ["Hint:"]),
    ("check_q_learning_update", _q_learning_two_steps, ["expected:", "got:", "differences: at"], ["Hint:"]),
    ("check_sarsa_update", _sarsa_two_steps, ["expected:", "got:", "differences: at"], ["Hint:"]),
    ("check_sarsa_update", _sarsa_mean, ["expected:", "got:"], ["Hint:", "Q-learning"]),
    ("check_sarsa_update", _sarsa_current_action, ["Hint: you bootstrap from Q[s_next, a], with the action just taken"],
     ["Q-learning"]),
    ("check_greedy_policy", _greedy_through_terminals, ["Hint: you bootstrap from the value of the next state even when"],
     ["immediate reward"]),
    ("check_first_visit_returns", _first_visit_argmax, ["tuple states", "expected: {(13, 10, 0)", "got:"], ["Hint:"]),
    ("check_bradley_terry_loss", lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), ["NaN or inf", "logsigmoid"], []),
    ("check_bradley_terry_loss", lambda c, r: -2 * F.logsigmoid(c - r).mean(),
     ["Hint: on every test case your result is the right one times 2"], []),
    ("check_bradley_terry_loss", lambda c, r: -F.logsigmoid(c - r).sum(), ["Hint: you sum over the batch"],
     ["constant factor"]),
    ("check_dpo_loss", lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean(),
     ["NaN or inf", "logsigmoid"], []),
    ("check_dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum(),
     ["expected:", "got:"], ["Hint:"]),
    ("check_preference_probability", lambda a, b, beta: np.exp(beta * (a - b)) / (1 + np.exp(beta * (a - b))),
     ["NaN or inf", "huge beta"], []),
    ("check_sequence_logprob", _sequence_logprob_axis0, ["wrong shape", "instead of"], ["off-by-one", "Hint:"]),
    ("check_sequence_logprob", _sequence_logprob_squeezed, ["wrong shape: expected (1,), got ()", "length-1 axes",
                                                            "a batch of one"], ["off-by-one"]),
    ("check_reward_to_go", _reward_to_go_short, ["the right one without its last entry along axis 0", "off-by-one"], []),
    ("check_reinforce_loss", lambda lp, G, b, v: -(v * (G - b.detach()) * lp).sum(1).mean(), ["expected:", "got:"],
     ["Hint:", "constant factor"]),
    ("check_reinforce_loss", lambda lp, G, b, v: -(v * (G - b.detach()) * lp).sum(), ["expected:", "got:"],
     ["Hint:", "constant factor"]),
    ("check_reinforce_loss", _reinforce_squeezed, ["(T = 1)", "expected:", "got:"], ["Hint:", "constant factor"]),
    ("check_expected_sarsa_target",
     lambda q, r, d, e, g: r + g * g * (1 - d) * (e / q.size * q.sum() + (1 - e) * q.max()),
     ["expected:", "got:"], ["Hint:", "constant factor"]),
    ("check_expected_sarsa_target", lambda q, r, d, e, g: r + g * (e / q.size * q.sum() + (1 - e) * q.max()),
     ["Hint: you bootstrap even though the episode terminated"], ["constant factor"]),
    ("check_ppo_value_loss", lambda vn, vo, R, e: torch.max((vn - R) ** 2, (vo + (vn - vo).clamp(-e, e) - R) ** 2).mean(),
     ["Hint: on every test case your result is the right one times 2"], []),
    ("check_kl_estimators", lambda lp, ref: (lp - ref, torch.exp(ref - lp) - 1 + (ref - lp)),
     ["output 1 of the returned tuple", "output 0 is right", "output 1 expected:", "output 1 got:"], ["Hint:"]),
    ("check_bootstrapped_returns", lambda r, d, v, g: rl_checks.bootstrapped_returns(r, torch.zeros_like(d), v, g),
     ["Hint: the sum runs across episode ends"], []),
]


@pytest.mark.parametrize("name,wrong,must,must_not", WRONG, ids=[f"{n}-{i}" for i, (n, *_) in enumerate(WRONG)])
def test_wrong_solution_is_rejected_on_every_seed_with_a_true_message(name, wrong, must, must_not):
    for seed, message in zip(SEEDS, _messages(name, wrong)):
        for fragment in must:
            assert fragment in message, f"{name}, seed {seed}: expected {fragment!r} in:\n{message}"
        for fragment in must_not:
            assert fragment not in message, f"{name}, seed {seed}: {fragment!r} is not true here:\n{message}"


# the checks whose cases or known mistakes this file's changes touched (the others keep their own tests)
EDITED = {
    "check_greedy_policy", "check_policy_evaluation", "check_first_visit_returns",
    "check_weighted_importance_sampling_update",
    "check_td0_update", "check_sarsa_update", "check_q_learning_update", "check_expected_sarsa_target",
    "check_dqn_td_target", "check_double_dqn_target", "check_reward_to_go", "check_reinforce_loss",
    "check_bootstrapped_returns", "check_gae", "check_ppo_policy_loss", "check_ppo_value_loss", "check_sequence_logprob",
    "check_kl_estimators", "check_bradley_terry_loss", "check_preference_probability", "check_kl_penalized_rewards",
    "check_response_gae", "check_dpo_loss", "check_grpo_advantages", "check_rloo_advantages",
}


def _check_name(pair) -> str | None:
    names = re.findall(r"checks\.(check_\w+)\(", pair.check)
    return names[0] if len(names) == 1 else None


def _notebook_exercises() -> list:
    return [pytest.param(p, id=p.label) for path in nbf.solution_notebooks() for p in ex.iter_exercises(path)
            if _check_name(p) in EDITED]


@pytest.mark.parametrize("pair", _notebook_exercises())
def test_the_notebooks_solutions_pass_on_every_seed(pair):
    ns = ex.exercise_namespace()
    exec(compile(pair.solution, f"<{pair.label}>", "exec"), ns)
    with contextlib.redirect_stdout(io.StringIO()):
        for seed in SEEDS:
            CHECKS[_check_name(pair)](ns[pair.names[0]], seed=seed)


# ----------------------------------------------------------------------------- the engine's rules, one by one


def _square(x):
    return x**2


def test_a_mistake_is_named_only_when_it_explains_every_failing_case():
    cases = [Case("a", (np.array([3.0, 1.0]),)), Case("b", (np.array([1.0, 3.0]),))]
    learner = lambda x: x**2 + (x > 2.5)  # noqa: E731  (wrong on both cases)
    first_only = Mistake("adds one to the first entry", lambda x: x**2 + np.array([1.0, 0.0]))  # explains case a only
    explains = Mistake("adds one above 2.5", lambda x: x**2 + (x > 2.5))
    with pytest.raises(CheckFailed) as info:
        check_function(learner, _square, cases, exercise="f", mistakes=[first_only, explains], quiet=True)
    assert "Hint: adds one above 2.5" in str(info.value)
    with pytest.raises(CheckFailed) as info:
        check_function(learner, _square, cases, exercise="f", mistakes=[first_only], quiet=True)
    message = str(info.value)
    assert "Hint:" not in message and "expected: [9. 1.]" in message and "got:      [10.  1.]" in message


def test_a_constant_factor_needs_two_non_zero_values_and_must_fit_every_case():
    one_scalar = [Case("a", (2.0,))]
    with pytest.raises(CheckFailed) as info:
        check_function(lambda x: 3 * x**2, _square, one_scalar, exercise="f", quiet=True)
    assert "constant factor" not in str(info.value) and "expected: 4." in str(info.value)
    two_scalars = [Case("a", (2.0,)), Case("b", (-1.0,))]
    with pytest.raises(CheckFailed) as info:
        check_function(lambda x: 3 * x**2, _square, two_scalars, exercise="f", quiet=True)
    assert "times 3" in str(info.value)
    with pytest.raises(CheckFailed) as info:  # a different factor on each case is no constant factor
        check_function(lambda x: (2 + x) * x**2, _square, two_scalars, exercise="f", quiet=True)
    assert "constant factor" not in str(info.value)


def test_the_shape_hints_say_only_what_the_arrays_show():
    cases = [Case("a", (np.arange(5.0),))]
    with pytest.raises(CheckFailed, match="without its first entry along axis 0: an off-by-one"):
        check_function(lambda x: (x**2)[1:], _square, cases, exercise="f", quiet=True)
    with pytest.raises(CheckFailed) as info:  # one entry short, but not a slice of the answer
        check_function(lambda x: x[:4] + 100, _square, cases, exercise="f", quiet=True)
    assert "off-by-one" not in str(info.value) and "axis 0 has length 4 instead of 5" in str(info.value)
    table = [Case("a", (np.arange(6.0).reshape(2, 3),))]
    with pytest.raises(CheckFailed, match="the right one transposed"):
        check_function(lambda x: (x**2).T, _square, table, exercise="f", quiet=True)
    with pytest.raises(CheckFailed, match=r"Axis 1 of the answer \(length 3\) is missing"):
        check_function(lambda x: (x**2).sum(1), _square, table, exercise="f", quiet=True)


def test_the_message_shows_the_first_failing_case_and_counts_the_others():
    cases = [Case("right", (1.0,)), Case("first wrong", (2.0,)), Case("second wrong", (3.0,))]
    with pytest.raises(CheckFailed) as info:
        check_function(lambda x: x**2 + (x > 1.5) * x, _square, cases, exercise="f", quiet=True)
    message = str(info.value)
    assert "inputs: first wrong" in message and "wrong on 2 of the 3 test cases; the others: second wrong" in message
    assert "expected: 4." in message and "got:      6." in message
