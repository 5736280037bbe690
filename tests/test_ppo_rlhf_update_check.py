"""Exercise 11.3's check (rlhf.checks.check_ppo_rlhf_update): the learner's whole PPO-RLHF update against the
trainer's, on a random tiny model (seconds). WRONG holds realistic wrong updates and the hint each must get."""

import pytest
import torch

from rl_basics.agents.losses import masked_mean, masked_whiten
from rl_basics.course.checking import CheckFailed
from rlhf import checks


def update(trainer, batch, step, kl_rewards, gae, *, whiten=True, old="logprobs", zero_grad=True, epochs=None):
    """A learner's update, written independently of the check's own variants."""
    cfg = trainer.config
    mask = batch.mask.float()
    advantages = gae(kl_rewards(batch.scores, batch.logprobs, batch.ref_logprobs, mask, trainer.kl_ctl.value),
                     batch.values, mask, cfg.gamma, cfg.gae_lambda)
    returns = advantages + batch.values
    if whiten:
        advantages = masked_whiten(advantages, mask)
    for epoch in range(cfg.update_epochs if epochs is None else epochs):
        for rows in trainer.minibatches(step, epoch):
            m, a, old_v, target = mask[rows], advantages[rows], batch.values[rows], returns[rows]
            logprobs, _, values = trainer.model(batch.input_ids[rows], batch.attention_mask[rows], mask.shape[1],
                                                cfg.temperature, None)
            ratio = (logprobs - getattr(batch, old)[rows]).exp()
            policy = masked_mean(torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)), m)
            v_clip = old_v + (values - old_v).clamp(-cfg.clip_coef_vf, cfg.clip_coef_vf)
            value = 0.5 * masked_mean(torch.max((values - target) ** 2, (v_clip - target) ** 2), m)
            if zero_grad:
                trainer.optimizer.zero_grad()
            (policy + cfg.vf_coef * value).backward()
            torch.nn.utils.clip_grad_norm_(trainer.policy_value.trainable_parameters(), cfg.max_grad_norm)
            trainer.optimizer.step()


WRONG = [
    ("check_ppo_rlhf_update", lambda *a: update(*a, whiten=False), "not whitened"),
    ("check_ppo_rlhf_update", lambda *a: update(*a, old="ref_logprobs"), "ratio compares the policy with the reference"),
    ("check_ppo_rlhf_update", lambda *a: update(*a, zero_grad=False), "never zeroed"),
    ("check_ppo_rlhf_update", lambda *a: update(*a, epochs=1), "only one pass"),
]


def test_the_checks_written_out_update_is_the_trainers():
    """The variants the hints come from start from this written-out update: without a flag it is the trainer's."""
    seed = 3
    package = checks._weight_change(seed, checks._package_update, key="package")
    written = checks._weight_change(seed, lambda trainer, batch: checks._reference_update(trainer, batch, 0))
    assert package.abs().max() > 0
    assert (written - package).abs().max() <= 1e-4 * package.abs().max()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_update_passes_with_the_courses_pieces_and_with_a_learners(seed, capsys):
    checks.check_ppo_rlhf_update(update, seed=seed)

    def learner_rewards(scores, logprobs, ref_logprobs, mask, kl_coef):
        rewards = -kl_coef * (logprobs - ref_logprobs) * mask
        rewards[torch.arange(len(scores)), mask.sum(1).long() - 1] += scores
        return rewards

    def learner_gae(rewards, values, mask, gamma, lam):
        next_mask = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], 1)
        next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], 1) * next_mask
        advantages, running = torch.zeros_like(rewards), torch.zeros(len(rewards))
        for t in reversed(range(rewards.shape[1])):
            running = rewards[:, t] + gamma * next_values[:, t] - values[:, t] + gamma * lam * next_mask[:, t] * running
            advantages[:, t] = running
        return advantages * mask

    checks.check_ppo_rlhf_update(update, learner_rewards, learner_gae, seed=seed)
    assert capsys.readouterr().out.count("✅") == 2


@pytest.mark.parametrize("name,wrong,hint", WRONG, ids=[h for _, _, h in WRONG])
def test_a_wrong_update_gets_the_right_hint(name, wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        checks.check_ppo_rlhf_update(wrong, seed=0)


def test_a_stub_is_not_done_yet():
    def stub(trainer, batch, step, kl_rewards, gae):
        raise NotImplementedError("write ppo_rlhf_update")

    with pytest.raises(CheckFailed, match="not done yet"):
        checks.check_ppo_rlhf_update(stub, seed=0)
