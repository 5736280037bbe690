"""Exercise 8.3, the whole PPO update (notebook 08): ``checks.check_ppo_update`` passes the notebook's
solution, fails its stub, and names each realistic mistake; the check leaves the learner's RNG alone.

The wrong solutions are the notebook's own solution with one line changed, so they track the notebook.
Cheap: every check call runs a few dozen gradient steps of tiny networks.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

from rl_basics import checks
from rl_basics.course import exercise_notebooks as ex
from rl_basics.course.checking import CheckFailed

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08_ppo.ipynb"


def _pair() -> ex.ExercisePair:
    pairs = [p for p in ex.iter_exercises(NOTEBOOK) if "check_ppo_update" in p.check]
    assert len(pairs) == 1, "notebook 08 must hold exactly one exercise checked by check_ppo_update"
    return pairs[0]


def _function(source: str):
    namespace = ex.exercise_namespace()
    exec(compile(source, "<exercise 8.3>", "exec"), namespace)
    return namespace["ppo_update"]


def _check(fn, seed: int | None = None) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        checks.check_ppo_update(fn, seed=seed)


def _edit(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, f"the solution no longer contains {old!r} exactly once: update this test"
    return source.replace(old, new)


@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_the_solution_passes(seed):
    _check(_function(_pair().solution), seed)


def test_the_stub_is_not_done_yet():
    with pytest.raises(CheckFailed, match="not done yet"):
        _check(_function(_pair().stub))


# (what the learner writes instead of the solution's line(s), a word of the hint that must name it)
WRONG = {
    "no shuffling": (
        ("order = torch.randperm(len(returns), generator=generator)", "order = torch.arange(len(returns))"),
        "never shuffle",
    ),
    "advantages whitened over the batch": (
        ("            adv = (adv - adv.mean()) / (adv.std() + 1e-8)\n", ""),
        ("n_minibatches = rollout.rewards.numel() // config.minibatch_size\n",
         "n_minibatches = rollout.rewards.numel() // config.minibatch_size\n"
         "    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)\n"),
        "whole batch",
    ),
    "advantages not whitened": (("            adv = (adv - adv.mean()) / (adv.std() + 1e-8)\n", ""), "not whitened"),
    "old log-probs recomputed every epoch": (
        ("        order = torch.randperm(",
         "        with torch.no_grad():\n"
         "            logp_old = actor.log_prob_entropy(obs, actions)[0]\n"
         "        order = torch.randperm("),
        "start of every epoch",
    ),
    "old log-probs from the current actor (ratio 1)": (
        ("log_ratio = logp - logp_old[index]", "log_ratio = logp - logp.detach()"),
        "always 1",
    ),
    "returns and advantages swapped": (
        ("adv = advantages[index]", "adv = returns[index]"),
        ("- returns[index]) ** 2", "- advantages[index]) ** 2"),
        "swapped",
    ),
    "autoreset steps kept": (("real = rollout.valid.reshape(-1) > 0", "real = rollout.valid.reshape(-1) > -1"),
                             "autoreset"),
    "truncation treated as termination": (
        ("rollout.next_values, rollout.terminated,", "rollout.next_values, rollout.episode_end,"),
        "truncated",
    ),
    "no gradient clipping": (("            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)\n", ""),
                             "not clipped"),
    "no early stop": (("if config.target_kl is not None and approx_kl > config.target_kl:", "if False:"),
                      "never stop early"),
    "ratio never clipped": (("policy_loss = torch.max(-adv * ratio, -adv * clipped).mean()",
                             "policy_loss = (-adv * ratio).mean()"), "never clipped"),
    "entropy bonus with the wrong sign": (("- config.ent_coef * entropy.mean()", "+ config.ent_coef * entropy.mean()"),
                                          "wrong sign"),
    "vf_coef missing": (("policy_loss + config.vf_coef * value_loss", "policy_loss + value_loss"),
                        "vf_coef is missing"),
    "the value loss's 0.5 missing": (("value_loss = 0.5 * ((critic", "value_loss = ((critic"), "lacks its 0.5"),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_each_mistake_is_named(name):
    *edits, hint = WRONG[name]
    source = _pair().solution
    for old, new in edits:
        source = _edit(source, old, new)
    for seed in (0, 1):  # the hint must fire whatever the random inputs
        with pytest.raises(CheckFailed, match=re.escape(hint)):
            _check(_function(source), seed)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("    return epoch + 1", "    return None", "return the number of epochs run"),
        ("            optimizer.step()\n", "", "never called optimizer.step()"),
        ("    for epoch in range(config.update_epochs):\n",
         "    rollout.rewards.mul_(1.5)\n    for epoch in range(config.update_epochs):\n", "in place"),
        ("torch.tensor_split(order, n_minibatches)", "torch.tensor_split(order, 2 * n_minibatches)",
         "optimizer steps where the course takes"),
        ("            optimizer.zero_grad()\n", "", "optimizer.zero_grad() before loss.backward()"),
    ],
    ids=["returns None", "no optimizer step", "changes the rollout", "twice the minibatches", "no zero_grad"],
)
def test_other_wrong_updates_get_a_clear_message(old, new, message):
    source = _edit(_pair().solution, old, new)
    with pytest.raises(CheckFailed, match=re.escape(message)):
        _check(_function(source), seed=0)


def test_the_check_leaves_the_global_rng_and_threads_alone():
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    _check(_function(_pair().solution), seed=0)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
