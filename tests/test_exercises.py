"""Exercises: every check passes on its solution and fails on its stub, the hints fire on
realistic wrong solutions, and the exercise-notebook generator and Colab cell do what they say.

Cheap by design (a few seconds): notebooks are read, never executed; each exercise cell is
run on its own in a namespace holding
``rl_basics.course.exercise_notebooks.EXERCISE_GLOBALS``.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from packaging.requirements import Requirement
from packaging.version import Version

from rl_basics import checks as rl_checks
from rl_basics.course import colab
from rl_basics.course import exercise_notebooks as ex
from rl_basics.course import notebook_files as nbf
from rl_basics.course.checking import CheckFailed
from rlhf import checks as lm_checks

ROOT = Path(__file__).resolve().parents[1]
ALL_CHECKS = {name: getattr(m, name) for m in (rl_checks, lm_checks) for name in m.__all__ if name.startswith("check_")}


# ----------------------------------------------------------------------------- running a pair


def _run(solution: str, check: str, label: str) -> None:
    ns = ex.exercise_namespace()
    exec(compile(solution, f"<{label}: exercise cell>", "exec"), ns)
    exec(compile(check, f"<{label}: check cell>", "exec"), ns)


def _assert_pair(solution: str, stub: str, check: str, label: str) -> None:
    try:
        _run(solution, check, label)
    except CheckFailed as exc:
        pytest.fail(f"{label}: the check fails on the solution itself:\n{exc}")
    with pytest.raises(CheckFailed, match="not done yet"):
        _run(stub, check, label)


def _notebook_pairs() -> list:
    params = []
    for path in nbf.solution_notebooks():
        try:
            params += [pytest.param(p, id=p.label) for p in ex.iter_exercises(path)]
        except ValueError as exc:  # malformed tags: reported by a failing test, not a collection error
            params.append(pytest.param(exc, id=f"{path.stem}:tags"))
    return params


NOTEBOOK_PAIRS = _notebook_pairs()


@pytest.mark.parametrize(
    "pair", NOTEBOOK_PAIRS or [pytest.param(None, marks=pytest.mark.skip(reason="no exercise cells in notebooks/ yet"))]
)
def test_notebook_check_passes_on_solution_and_fails_on_stub(pair):
    if isinstance(pair, Exception):
        pytest.fail(str(pair))
    _assert_pair(pair.solution, pair.stub, pair.check, pair.label)


def catalogue(path: Path = ROOT / "docs" / "exercises.md") -> list[tuple[str, str, str]]:
    """The ready-made exercises of docs/exercises.md's catalogue, as (title, exercise cell, check cell):
    a ``### title`` heading, a ```` ```python exercise ```` block and a ```` ```python check ```` block."""
    text = path.read_text(encoding="utf-8")
    pattern = r"^### ([^\n]+)\n+```python exercise\n(.*?)```\s*```python check\n(.*?)```"
    return [(title.strip(), solution, check) for title, solution, check in re.findall(pattern, text, re.S | re.M)]


CATALOGUE_PAIRS = catalogue()


@pytest.mark.parametrize("title,solution,check", CATALOGUE_PAIRS, ids=[t for t, _, _ in CATALOGUE_PAIRS])
def test_catalogue_entry_passes_on_solution_and_fails_on_stub(title, solution, check):
    _assert_pair(solution, ex.make_stub(solution), check, title)


def test_catalogue_covers_every_check_and_every_chapter():
    used = {name for _, _, check in CATALOGUE_PAIRS for name in re.findall(r"check_\w+", check)}
    assert set(ALL_CHECKS) <= used, f"checks without a catalogue entry in docs/exercises.md: {sorted(set(ALL_CHECKS) - used)}"
    chapters = [re.match(r"Chapter (\d+)", title).group(1) for title, _, _ in CATALOGUE_PAIRS]
    for chapter in (f"{i:02d}" for i in range(13)):
        assert chapters.count(chapter) >= 2, f"chapter {chapter} has fewer than two catalogue exercises"


@pytest.mark.parametrize("title,solution,check", CATALOGUE_PAIRS, ids=[t for t, _, _ in CATALOGUE_PAIRS])
def test_catalogue_solution_passes_on_many_seeds(title, solution, check):
    """Fresh seeds in a notebook must never fail a right answer (float32 tolerances, ties...)."""
    name = re.search(r"(check_\w+)", check).group(1)
    ns = ex.exercise_namespace()
    exec(solution, ns)
    fn = ns[ex._defined_names(solution)[0]]
    for seed in range(5):
        ALL_CHECKS[name](fn, seed=seed)


def test_every_chapter_has_two_exercises():
    """Once exercise cells are in the notebooks (any of them), every chapter needs at least two."""
    if not any(isinstance(p.values[0], ex.ExercisePair) for p in NOTEBOOK_PAIRS):
        pytest.skip("no exercise cells in notebooks/ yet: paste them from docs/exercises.md's catalogue")
    counts = {path.name: 0 for path in nbf.solution_notebooks()}
    for p in NOTEBOOK_PAIRS:
        if isinstance(p.values[0], ex.ExercisePair):
            counts[p.values[0].notebook.name] += 1
    short = {name: n for name, n in counts.items() if n < 2}
    assert not short, f"notebooks with fewer than two (exercise, check) pairs: {short}"


def test_committed_exercise_notebooks_are_up_to_date():
    committed = sorted(nbf.EXERCISES_DIR.glob("*.ipynb"))
    if not committed:
        pytest.skip("no exercise notebooks committed in exercises/ (build them with python -m rl_basics.course.exercise_notebooks build)")
    for path in committed:
        solution = nbf.NOTEBOOKS_DIR / path.name
        assert solution.exists(), f"exercises/{path.name} has no solution notebook notebooks/{path.name}"
        expected = nbf.dumps_notebook(ex.exercise_notebook(nbf.read_notebook(solution), path.name))
        assert path.read_text(encoding="utf-8") == expected, (
            f"exercises/{path.name} is out of date: run `python -m rl_basics.course.exercise_notebooks build`"
        )


# ----------------------------------------------------------------------------- the hints fire

t = torch.tensor


def _wrong_discount_reversed(r, g):
    return sum(g**k * x for k, x in enumerate(reversed(list(r))))


def _bellman_transitions(model, V, pi, g):
    return (pi * (model.rewards + g * model.transitions @ V)).sum(1)


def _first_visit_forward_overwrite(states, rewards, g):
    G = [0.0] * len(states)
    acc = 0.0
    for i in reversed(range(len(states))):
        acc = rewards[i] + g * acc
        G[i] = acc
    return {s: G[i] for i, s in enumerate(states)}


def _q_no_terminal(Q, s, a, r, s2, d, al, g):
    Q[s, a] += al * (r + g * Q[s2].max() - Q[s, a])
    return Q


def _q_forgot_return(Q, s, a, r, s2, d, al, g):
    Q[s, a] += al * (r + g * (1 - d) * Q[s2].max() - Q[s, a])


def _sarsa_uses_max(Q, s, a, r, s2, a2, d, al, g):
    Q[s, a] += al * (r + g * (1 - d) * Q[s2].max() - Q[s, a])
    return Q


def _td0_no_terminal(V, s, r, s2, d, al, g):
    V[s] += al * (r + g * V[s2] - V[s])
    return V


def _es_greedy_only_1_minus_eps(q, r, d, e, g):
    probs = np.full(q.size, e / q.size)
    probs[q.argmax()] = 1 - e
    return r + g * (1 - d) * probs @ q


def _rtg_across_episodes(r, d, g):
    out, G = np.zeros(len(r)), 0.0
    for i in reversed(range(len(r))):
        G = r[i] + g * G
        out[i] = G
    return out


def _rtg_off_by_one(r, d, g):
    out, G = np.zeros(len(r)), 0.0
    for i in reversed(range(len(r))):
        G = r[i] + (0.0 if i + 1 < len(r) and d[i + 1] else g * G)
        out[i] = G
    return out


def _rtg_forward(r, d, g):
    out, G = np.zeros(len(r)), 0.0
    for i in range(len(r)):
        G = g * G + r[i]
        out[i] = G
        if d[i]:
            G = 0.0
    return out


def _gae(r, v, nv, term, end, g, lam, cut=None, boot=None):
    A, run = torch.zeros_like(r), torch.zeros_like(r[0])
    cut = end if cut is None else cut
    boot = term if boot is None else boot
    for i in reversed(range(r.shape[0])):
        delta = r[i] + g * (1 - boot[i]) * nv[i] - v[i]
        run = delta + g * lam * (1 - cut[i]) * run
        A[i] = run
    return A


def _returns_no_done(r, d, v, g):
    out, G = torch.zeros_like(r), v
    for i in reversed(range(r.shape[0])):
        G = r[i] + g * G
        out[i] = G
    return out


def _ppo(n, o, a, e, combine=torch.max):
    ratio = (n - o).exp()
    return combine(-a * ratio, -a * ratio.clamp(1 - e, 1 + e)).mean()


def _vloss(vn, vo, R, e, half=0.5, combine=torch.max):
    vc = vo + (vn - vo).clamp(-e, e)
    return half * combine((vn - R) ** 2, (vc - R) ** 2).mean()


def _seq_lp(lg, ids, m, T, shift=True, temp=True):
    lp = F.log_softmax(lg / (T if temp else 1.0), -1)
    if shift:
        return (lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) * m[:, 1:]).sum(-1)
    return (lp.gather(-1, ids[..., None]).squeeze(-1) * m).sum(-1)


def _rewards(s, lp, ref, m, c, col="last_real", mask_kl=True):
    r = -c * (lp - ref) * (m if mask_kl else 1.0)
    idx = m.sum(-1).long() - 1 if col == "last_real" else torch.full((len(s),), m.shape[1] - 1)
    r[torch.arange(len(s)), idx] += s
    return r


def _rgae(r, v, m, g, lam, respect_mask=True):
    B, T = r.shape
    mm = m if respect_mask else torch.ones_like(m)
    nm = torch.cat([mm[:, 1:], torch.zeros_like(mm[:, :1])], 1)
    nv = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1) * nm
    A, run = torch.zeros_like(r), torch.zeros(B)
    for i in reversed(range(T)):
        run = r[:, i] + g * nv[:, i] - v[:, i] + g * lam * nm[:, i] * run
        A[:, i] = run
    return A * m


def _softmax(H, axis):
    """A learner's stable softmax along ``axis`` (for the gradient-bandit mistakes)."""
    e = np.exp(H - H.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _chapter_tests(name: str):
    """A chapter's own test module (its wrong solutions are reused here rather than copied)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_{name}_chapter_tests", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WRONG = [
    # (check, wrong solution, a fragment of the hint it must get)
    ("check_incremental_update", lambda Q, N, a, r, al: (Q + (r[:, None] - Q) / (N + 1), N + np.eye(Q.shape[1])[a]),
     "only the pulled arm of each run"),
    ("check_incremental_update", _chapter_tests("test_bandits")._inc_forgets_counts, "counts N are not updated"),
    ("check_ucb_scores", lambda Q, N, t, c: np.where(N > 0, Q + c * np.log(t) / np.maximum(N, 1), np.inf),
     "square root is missing"),
    ("check_ucb_scores", lambda Q, N, t, c: Q + c * np.sqrt(np.log(t) / np.maximum(N, 1)), "must score +inf"),
    ("check_gradient_bandit_update",
     lambda H, a, r, b, al: H + al * r[:, None] * (np.eye(H.shape[1])[a] - _softmax(H, 1)), "baseline is missing"),
    ("check_gradient_bandit_update",
     lambda H, a, r, b, al: H + al * (r - b)[:, None] * (np.eye(H.shape[1])[a] - _softmax(H, 0)), "taken over the runs"),
    ("check_discounted_return", lambda r, g: float(np.sum(r)), "discount is missing"),
    ("check_discounted_return", lambda r, g: sum(g ** (k + 1) * x for k, x in enumerate(r)), "off by one"),
    ("check_discounted_return", _wrong_discount_reversed, "reverse order"),
    ("check_discounted_returns", lambda r, g: np.cumsum(r * g ** np.arange(len(r))), "loop backwards"),
    ("check_discounted_returns", lambda r, g: np.array([sum(r[t:]) for t in range(len(r))]), "discount is missing"),
    ("check_bellman_expectation_backup", _bellman_transitions, "model.continuation"),
    ("check_bellman_expectation_backup", lambda m, V, pi, g: (pi * (m.rewards + m.continuation @ V)).sum(1), "discount gamma is missing"),
    ("check_bellman_expectation_backup", lambda m, V, pi, g: (m.rewards + g * m.continuation @ V).max(1), "optimality"),
    ("check_bellman_expectation_backup", lambda m, V, pi, g: (pi * (m.rewards + g * m.continuation @ V)), "shape"),
    ("check_bellman_optimality_backup", lambda m, V, g: (m.rewards + g * m.transitions @ V).max(1), "model.continuation"),
    ("check_bellman_optimality_backup", lambda m, V, g: (m.rewards + g * m.continuation @ V).min(1), "min over actions"),
    ("check_greedy_policy", lambda m, V, g: np.eye(m.n_actions)[(m.rewards + g * m.continuation @ V).argmin(1)], "argmax, not argmin"),
    ("check_greedy_policy", lambda m, V, g: (m.rewards + g * m.continuation @ V).argmax(1), "one-hot"),
    ("check_greedy_policy", lambda m, V, g: np.eye(m.n_actions)[m.rewards.argmax(1)], "immediate reward only"),
    ("check_policy_evaluation", lambda m, pi, g, th: (pi * m.rewards).sum(1), "one sweep"),
    ("check_first_visit_returns", _first_visit_forward_overwrite, "*last* visit"),
    ("check_first_visit_returns", lambda s, r, g: {x: float(sum(r[i:])) for i, x in reversed(list(enumerate(s)))}, "discount is missing"),
    ("check_weighted_importance_sampling_update", lambda V, C, G, W: (V + W / np.maximum(C, 1e-12) * (G - V), C + W), "W / C_new"),
    ("check_weighted_importance_sampling_update", lambda V, C, G, W: (V + (G - V) / (C + 1), C + 1), "ordinary average"),
    ("check_td0_update", _td0_no_terminal, "terminated"),
    ("check_td0_update", lambda V, s, r, s2, d, al, g: None, "forget the `return`"),
    ("check_sarsa_update", _sarsa_uses_max, "that is Q-learning"),
    ("check_q_learning_update", _q_no_terminal, "cliff"),
    ("check_q_learning_update", _q_forgot_return, "forget the `return`"),
    ("check_expected_sarsa_target", _es_greedy_only_1_minus_eps, "epsilon / A"),
    ("check_expected_sarsa_target", lambda q, r, d, e, g: r + g * (1 - d) * q.max(), "Q-learning target"),
    ("check_reward_to_go", _rtg_across_episodes, "across episode boundaries"),
    ("check_reward_to_go", _rtg_off_by_one, "off by one"),
    ("check_reward_to_go", _rtg_forward, "forward cumulative sum"),
    ("check_reinforce_loss", lambda lp, G, b, v: (v * (G - b.detach()) * lp).sum(0).mean(), "minus sign"),
    ("check_reinforce_loss", lambda lp, G, b, v: -(v * (G - b) * lp).sum(0).mean(), "baseline.detach()"),
    ("check_reinforce_loss", lambda lp, G, b, v: -(v * G * lp).sum(0).mean(), "baseline is missing"),
    ("check_reinforce_loss", lambda lp, G, b, v: -((G - b.detach()) * lp).sum(0).mean(), "padding is counted"),
    ("check_reinforce_loss", lambda lp, G, b, v: -(v * (G - b.detach()) * lp).mean(), "average over all T x N entries"),
    ("check_reinforce_loss", lambda lp, G, b, v: float(-(v * (G - b.detach()) * lp).sum(0).mean().detach()), "no gradient"),
    ("check_bootstrapped_returns", _returns_no_done, "across episode ends"),
    ("check_bootstrapped_returns", lambda r, d, v, g: _returns_no_done(r, d, v, g).T, "transposed"),
    ("check_gae", lambda r, v, nv, te, en, g, lam: _gae(r, v, nv, te, en, g, lam, boot=torch.zeros_like(te)), "(1 - terminated)"),
    ("check_gae", lambda r, v, nv, te, en, g, lam: _gae(r, v, nv, te, en, g, lam, cut=te), "truncated episode ends too"),
    ("check_gae", lambda r, v, nv, te, en, g, lam: _gae(r, v, nv, te, en, g, lam, cut=torch.zeros_like(en)), "across episode ends"),
    ("check_gae", lambda r, v, nv, te, en, g, lam: _gae(r, v, nv, te, en, g, lam, boot=en), "truncated step"),
    ("check_gae", lambda r, v, nv, te, en, g, lam: _gae(r, v, nv, te, en, g, 1.0), "lam is missing"),
    ("check_ppo_policy_loss", lambda n, o, a, e: _ppo(n, o, a, e, torch.min), "min of the two losses"),
    ("check_ppo_policy_loss", lambda n, o, a, e: (-a * (n - o).exp()).mean(), "clipping is missing"),
    ("check_ppo_policy_loss", lambda n, o, a, e: _ppo(o, n, a, e), "inverted"),
    ("check_ppo_value_loss", lambda vn, vo, R, e: _vloss(vn, vo, R, e, half=1.0), "0.5"),
    ("check_ppo_value_loss", lambda vn, vo, R, e: _vloss(vn, vo, R, e, combine=torch.min), "min of the clipped"),
    ("check_ppo_value_loss", lambda vn, vo, R, e: 0.5 * ((vn - R) ** 2).mean(), "clipping is missing"),
    ("check_sequence_logprob", lambda lg, ids, m, T: _seq_lp(lg, ids, m, T, shift=False), "off by one"),
    ("check_sequence_logprob", lambda lg, ids, m, T: _seq_lp(lg, ids, m, T, temp=False), "temperature is missing"),
    ("check_sequence_logprob", lambda lg, ids, m, T: _seq_lp(lg, ids, torch.ones_like(m), T), "mask is ignored"),
    ("check_kl_estimators", lambda lp, ref: (ref - lp, torch.expm1(lp - ref) - (lp - ref)), "wrong sign"),
    ("check_kl_estimators", lambda lp, ref: (lp - ref, 0.5 * (lp - ref) ** 2), "k2"),
    ("check_bradley_terry_loss", lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), "logsigmoid"),
    ("check_bradley_terry_loss", lambda c, r: -F.logsigmoid(r - c).mean(), "swapped"),
    ("check_bradley_terry_loss", lambda c, r: F.logsigmoid(c - r).mean(), "sign is flipped"),
    ("check_preference_probability", lambda a, b, beta: 1 / (1 + np.exp(-(a - b))), "beta is missing"),
    ("check_preference_probability", lambda a, b, beta: 1 / (1 + np.exp(-beta * (b - a))), "swapped"),
    ("check_kl_penalized_rewards", lambda s, lp, ref, m, c: _rewards(s, lp, ref, m, c, col="last"), "padding for shorter"),
    ("check_kl_penalized_rewards", lambda s, lp, ref, m, c: _rewards(s, lp, ref, m, c, mask_kl=False), "padding tokens get a KL"),
    ("check_kl_penalized_rewards", lambda s, lp, ref, m, c: _rewards(s, ref, lp, m, c), "wrong sign"),
    ("check_response_gae", lambda r, v, m, g, lam: _rgae(r, v, m, g, lam, respect_mask=False), "padding leaks in"),
    ("check_response_gae", lambda r, v, m, g, lam: _rgae(r, v, m, g, 1.0), "lam is missing"),
    ("check_dpo_loss", lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(), "reference model is missing"),
    ("check_dpo_loss", lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean(), "logsigmoid"),
    ("check_dpo_loss", lambda pc, pr, rc, rr, b: -b * F.logsigmoid((pc - rc) - (pr - rr)).mean(), "beta multiplies the loss"),
    ("check_grpo_advantages", lambda r, G: (r - r.mean()) / (r.std() + 1e-4), "whole batch"),
    ("check_grpo_advantages", lambda r, G: (r.view(-1, G) - r.view(-1, G).mean(1, keepdim=True)).div(
        r.view(-1, G).std(1, unbiased=False, keepdim=True) + 1e-4).view(-1), "population std"),
    ("check_grpo_advantages", lambda r, G: (r.view(G, -1) - r.view(G, -1).mean(0)).div(r.view(G, -1).std(0) + 1e-4).view(-1), "contiguous"),
    ("check_rloo_advantages", lambda r, G: (r.view(-1, G) - r.view(-1, G).mean(1, keepdim=True)).view(-1), "leave it out"),
]


@pytest.mark.parametrize("name,wrong,hint", WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_check_gives_the_right_hint_for_a_wrong_solution(name, wrong, hint):
    for seed in (0, 1):
        with pytest.raises(CheckFailed) as info:
            ALL_CHECKS[name](wrong, seed=seed)
        assert hint in str(info.value), f"{name} (seed {seed}) should hint {hint!r}; it said:\n{info.value}"
        assert f"seed={seed}" in str(info.value) or "seed" not in hint


CHECKS_TESTED_ELSEWHERE = {
    # check -> the test module that holds its wrong solutions (in a module-level WRONG) and runs them
    **{name: "test_dqn" for name in ("check_dqn_td_target", "check_replay_sample", "check_double_dqn_target")},
    **{name: "test_loop_exercises_mc_td" for name in ("check_mc_control_loop", "check_sarsa_episode",
                                                       "check_q_learning_episode")},
    "check_train_reinforce": "test_loop_exercises_pg",
    "check_ppo_update": "test_loop_exercises_ppo",
    "check_ppo_rlhf_update": "test_ppo_rlhf_update_check",
}


def _tested_in_chapter_modules() -> set[str]:
    """Checks whose wrong solutions are tested in their chapter's own test module: each listed module must
    define ``WRONG`` and name the check (a module of one check's loop exercise keys WRONG by mistake instead)."""
    covered = set()
    for check, module in CHECKS_TESTED_ELSEWHERE.items():
        source = Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8")
        if re.search(r"^WRONG\b", source, re.M) and check in source:
            covered.add(check)
    return covered


def test_every_check_has_wrong_solutions_that_it_catches():
    covered = {name for name, _, _ in WRONG} | _tested_in_chapter_modules()
    assert set(ALL_CHECKS) <= covered, f"checks with no wrong-solution test: {sorted(set(ALL_CHECKS) - covered)}"


def test_check_reports_an_input_changed_in_place():
    def in_place(rewards, dones, gamma):
        rewards[:] = rewards[::-1]
        return rl_checks.reward_to_go(rewards, dones, gamma)

    with pytest.raises(CheckFailed, match="in place"):
        rl_checks.check_reward_to_go(in_place, seed=0)


def test_check_reports_an_exception_raised_by_the_learner():
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        rl_checks.check_discounted_return(lambda r, g: 1 / 0, seed=0)


def test_check_passes_quietly_with_one_line(capsys):
    rl_checks.check_discounted_return(rl_checks.discounted_return, seed=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✓") and "seed 3" in out


# ----------------------------------------------------------------------------- the generator

SOLUTION = '''import math

SCALE = 2.0


@staticmethod
def first(x, y=1):
    """Add.

    More text.
    """
    z = x + y  # solution line
    return z * SCALE


def second(values):
    total = 0
    for v in values:
        total += v
    return total
'''


def test_make_stub_keeps_signatures_docstrings_and_other_code():
    stub = ex.make_stub(SOLUTION)
    assert "import math" in stub and "SCALE = 2.0" in stub and "@staticmethod" in stub
    assert 'def first(x, y=1):\n    """Add.\n\n    More text.\n    """\n    raise NotImplementedError(' in stub
    assert "def second(values):\n    raise NotImplementedError(" in stub
    assert "solution line" not in stub and "total +=" not in stub
    ns: dict = {}
    exec(stub, ns)
    with pytest.raises(NotImplementedError, match="write the body of `second`"):
        ns["second"]([1, 2])


def test_make_stub_replaces_only_marked_regions():
    source = (
        "def f(xs):\n    out = []\n    for x in xs:\n        # BEGIN SOLUTION\n        y = 2 * x\n"
        "        out.append(y)\n        # END SOLUTION\n    return out\n"
    )
    stub = ex.make_stub(source)
    assert stub.splitlines() == [
        "def f(xs):", "    out = []", "    for x in xs:",
        "        raise NotImplementedError('Exercise: write this part, then run the check cell below.')",
        "    return out",
    ]


@pytest.mark.parametrize("source,message", [
    ("x = 1\n", "needs a top-level `def`"),
    ("def f(x): return x\n", "own lines"),
    ("def f(x):\n    # BEGIN SOLUTION\n    return x\n", "never closed"),
    ("def f(x):\n    # END SOLUTION\n    return x\n", "without"),
    ("def f(x:\n", "not valid Python"),
])
def test_make_stub_rejects_unusable_cells(source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ex.make_stub(source, where="nb.ipynb cell 3")


def _cell(kind, source, tags=(), outputs=None):
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {}, "source": source}
    if kind == "code":
        cell["outputs"] = outputs or []
        cell["execution_count"] = 3 if outputs else None
    return cell


def _notebook(cells):
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _course_like_notebook():
    solution = 'def discounted_return(rewards, gamma):\n    """Return G_0."""\n    return sum(gamma**k * r for k, r in enumerate(rewards))\n'
    return _notebook([
        _cell("markdown", "# Chapter\n\n**Learning goals**: ..."),
        _cell("code", "import numpy as np", outputs=[{"output_type": "stream", "name": "stdout", "text": "x"}]),
        _cell("markdown", "### Exercise"),
        _cell("code", solution, tags=["exercise"]),
        _cell("code", "from rl_basics import checks\nchecks.check_discounted_return(discounted_return)", tags=["check"]),
        _cell("code", "print(discounted_return([1, 1], 0.5))", tags=["solution-only"]),
        _cell("markdown", "## Summary and what comes next"),
    ])


def test_exercise_notebook_stubs_tags_drops_solution_only_and_clears_outputs(tmp_path):
    import nbformat

    src = tmp_path / "notebooks" / "00_demo.ipynb"
    src.parent.mkdir()
    src.write_text(json.dumps(_course_like_notebook()))
    (pair,) = ex.iter_exercises(src)
    assert pair.names == ["discounted_return"] and (pair.exercise_index, pair.check_index) == (3, 4)
    _assert_pair(pair.solution, pair.stub, pair.check, pair.label)

    out = ex.exercise_notebook(nbf.read_notebook(src), src.name)
    nbformat.validate(nbformat.from_dict(out))
    sources = ["".join(c["source"]) for c in out["cells"]]
    assert "Learning goals" in sources[0] and "Exercise version" in sources[1]
    assert not any("print(discounted_return" in s for s in sources), "the solution-only cell must be dropped"
    assert any("raise NotImplementedError" in s and '"""Return G_0."""' in s for s in sources)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in out["cells"] if c["cell_type"] == "code")
    assert len({c["id"] for c in out["cells"]}) == len(out["cells"])


def test_build_command_writes_byte_stable_exercise_notebooks(tmp_path):
    src = tmp_path / "01_demo.ipynb"
    src.write_text(json.dumps(_course_like_notebook()))
    assert ex.main(["build", "--out", str(tmp_path / "ex"), str(src)]) == 0
    first = (tmp_path / "ex" / "01_demo.ipynb").read_text()
    ex.main(["build", "--out", str(tmp_path / "ex"), str(src)])
    assert (tmp_path / "ex" / "01_demo.ipynb").read_text() == first
    (pair,) = ex.iter_exercises(tmp_path / "ex" / "01_demo.ipynb")  # the tags survive: a rebuilt copy is still checkable
    with pytest.raises(CheckFailed, match="not done yet"):
        _run(pair.solution, pair.check, pair.label)


def test_the_module_runs_as_a_command(tmp_path):
    src = tmp_path / "02_demo.ipynb"
    src.write_text(json.dumps(_course_like_notebook()))
    done = subprocess.run([sys.executable, "-m", "rl_basics.course.exercise_notebooks", "list", str(src)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "discounted_return" in done.stdout and "check_discounted_return" in done.stdout


@pytest.mark.parametrize("cells,message", [
    ([_cell("code", "def f():\n    pass", tags=["exercise"])], "without a check cell"),
    ([_cell("code", "f()", tags=["check"])], "without an exercise cell"),
    ([_cell("code", "def f():\n    pass", tags=["exercise"]), _cell("code", "def g():\n    pass", tags=["exercise"])], "without a check cell"),
    ([_cell("markdown", "x", tags=["exercise"])], "belong on code cells"),
])
def test_iter_exercises_rejects_broken_tagging(tmp_path, cells, message):
    path = tmp_path / "03_demo.ipynb"
    path.write_text(json.dumps(_notebook(cells)))
    with pytest.raises(ValueError, match=message):
        list(ex.iter_exercises(path))


# ----------------------------------------------------------------------------- Colab


def test_colab_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the Colab cell ran a command outside Colab"))
    exec(colab.COLAB_CELL, {})


def test_colab_cell_clones_and_installs_without_touching_torch(monkeypatch, tmp_path):
    calls = []
    home = str(tmp_path / "rl-course")

    def run(cmd, **kwargs):  # the clone puts the course's set-up script in place; pip is recorded only
        calls.append(cmd)
        if isinstance(cmd, str) and "git clone" in cmd:
            target = tmp_path / "rl-course" / "rl_basics" / "course"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "rl_basics" / "course" / "colab_setup.py", target)

    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cell = colab.COLAB_CELL.replace("/content", str(tmp_path))
    assert len(cell.splitlines()) <= 5  # short enough to read before the teaching starts
    exec(cell, {})
    assert calls[0] == f"[ -d {home} ] || git clone -q --depth 1 {colab.REPO_URL} {home}"
    pin = str(tmp_path / "keep-colab-torch.txt")
    assert calls[1] == [sys.executable, "-m", "pip", "install", "-q", "-c", pin, "-e", home]
    # pip's comparison (PEP 440): "torch==2.14.1" admits the installed "2.14.1+cu130" (a local version label),
    # and must admit exactly the installed release, whatever its label
    requirement = Requirement(Path(pin).read_text().strip())
    assert requirement.name == "torch"
    assert requirement.specifier.contains(Version(torch.__version__), prereleases=True)
    assert not requirement.specifier.contains(Version(f"{Version(torch.__version__).base_version}.post1"))
    assert sys.path[0] == home


def test_course_dependencies_keep_the_installed_torch(tmp_path):
    """What the Colab cell relies on: with torch pinned to the installed build, pip resolves the
    course's dependencies from what is installed (no index) and installs no torch."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = tmp_path / "pin.txt"
    pin.write_text(f"torch=={importlib.metadata.version('torch')}\n")  # as the Colab cell writes it
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q", "-c", str(pin),
                           "--report", str(report), *deps], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    would_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert "torch" not in would_install and would_install == []


def test_insert_colab_cell_is_idempotent(tmp_path):
    path = tmp_path / "04_demo.ipynb"
    path.write_text(json.dumps(_course_like_notebook()))
    assert colab.insert_colab_cell(path) is True
    cells = nbf.read_notebook(path)["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert nbf.cell_source(first_code) == colab.COLAB_CELL and cells[0]["cell_type"] == "markdown"
    assert colab.insert_colab_cell(path) is False
    nb = nbf.read_notebook(path)
    next(c for c in nb["cells"] if c["cell_type"] == "code")["source"] = colab.COLAB_MARKER + ": an older version\n"
    path.write_text(json.dumps(nb))
    assert colab.insert_colab_cell(path) is True
    assert sum(colab.COLAB_MARKER in "".join(c["source"]) for c in nbf.read_notebook(path)["cells"]) == 1


def test_cell_command_prints_the_colab_cell(capsys):
    assert colab.main(["cell"]) == 0
    assert capsys.readouterr().out == colab.COLAB_CELL + "\n"


def test_links_command_prints_a_badge_per_notebook(capsys):
    colab.main(["links"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(nbf.solution_notebooks())
    assert all("colab.research.google.com/github/rl-course/rl-course/blob/main/notebooks/" in line for line in lines)


def test_colab_links_point_at_the_notebook():
    assert colab.colab_url("notebooks/00_x.ipynb") == (
        "https://colab.research.google.com/github/rl-course/rl-course/blob/main/notebooks/00_x.ipynb")
    assert colab.colab_badge("notebooks/00_x.ipynb").startswith("[![Open in Colab]")
