"""PPO for language models: the LM-specific math against hand-computed numbers, the rollout's
log-probs against the training pass, checkpoints and resumption, and the fault checks.

Everything runs on randomly initialised tiny ``PhiForCausalLM`` models (phi-2's architecture,
a few thousand parameters) with a small byte-level BPE tokenizer trained in the fixture, so
the file needs neither the shipped tiny world nor the cached SFT/reward stages.
"""

import math

import numpy as np
import pytest
import torch
from transformers import PhiForCausalLM, PhiForSequenceClassification

from rl_basics.agents.checkpoints import load_checkpoint
from rl_basics.agents.losses import ppo_policy_loss, ppo_value_loss
from rlhf import corpus
from rlhf.models import fuse_gelu
from rlhf.policy import kl_per_token
from rlhf.policy_value import POLICY, VALUE, PolicyValueModel
from rlhf.ppo import KLController, PPOConfig, PPOTrainer, latest_checkpoint, per_token_rewards, response_advantages
from rlhf.scoring import RewardScorer
from rlhf.tokens import (left_pad, pack_rows, position_ids_from_mask, response_mask, sample_tokens, sampling_uniforms,
                         token_logprobs, tokenize_prompts)
from rlhf.tiny_world import TinyWorldConfig, tiny_phi_config, train_tokenizer

TINY = TinyWorldConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       max_position_embeddings=64)
SMALL = dict(batch_size=8, num_minibatches=2, update_epochs=2, total_steps=4, max_new_tokens=10,
             reward_norm_samples=16, lora_r=4, lora_alpha=8)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(corpus.generate_reviews(200, 0), vocab_size=300, max_length=64)


@pytest.fixture(scope="module")
def prompts():
    return corpus.generate_prompts(32, 4, 0)[0]


def random_policy(tokenizer, seed=0):
    """A random tiny Phi whose EOS is likely enough (~6% per token) that responses end at mixed lengths."""
    torch.manual_seed(seed)
    model = PhiForCausalLM(tiny_phi_config(tokenizer, TINY)).eval()
    with torch.no_grad():
        model.lm_head.bias[tokenizer.eos_token_id] = 3.0
    return model


def random_reward_model(tokenizer, seed=1):
    torch.manual_seed(seed)
    config = tiny_phi_config(tokenizer, TINY)
    config.num_labels = 1
    return PhiForSequenceClassification(config).eval()


def make_trainer(tokenizer, prompts, checkpoint_dir=None, **overrides):
    config = PPOConfig(**{**SMALL, **overrides})
    return PPOTrainer(random_policy(tokenizer), tokenizer, random_reward_model(tokenizer), tokenizer, prompts,
                      config, seed=0, checkpoint_dir=checkpoint_dir)


# --------------------------------------------------------------------------- math, by hand


def test_per_token_rewards_put_kl_on_every_token_and_the_score_on_the_last():
    scores = torch.tensor([1.0, -0.5])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-1.0, -1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0, -3.0], [-1.0, -2.0, -0.5, -1.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # row 0 ended with EOS at index 2; row 1 hit the length limit
    rewards, kl = per_token_rewards(scores, logprobs, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.0, 1.0, -0.5, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.0, 0.95, 0.0], [0.0, -0.1, 0.05, -0.5]]))


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0])
    torch.testing.assert_close(kl_per_token(logp, ref, "k1"), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(kl_per_token(logp, ref, "k3"), torch.tensor([math.exp(-0.5) - 1 + 0.5, 0.0]))
    with pytest.raises(ValueError, match="estimator"):
        kl_per_token(logp, ref, "k2")


def test_gae_over_response_tokens_stops_at_the_last_real_token():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = response_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    # delta_2 = 1 - 0.3 (terminal: no bootstrap from the padding's 9.0); delta_1 = delta_0 = 0.1
    expected = torch.tensor([0.1 + 0.95 * (0.1 + 0.95 * 0.7), 0.1 + 0.95 * 0.7, 0.7])
    torch.testing.assert_close(adv[0, :3], expected)
    torch.testing.assert_close(ret[0, :3], expected + values[0, :3])
    # garbage on the padding changes nothing on real tokens
    adv2, _ = response_advantages(torch.tensor([[0.0, 0.0, 1.0, 5.0]]), torch.tensor([[0.1, 0.2, 0.3, -7.0]]),
                                  mask, 1.0, 0.95)
    torch.testing.assert_close(adv2[0, :3], expected)
    # lambda = 1, gamma = 1: every return is the final score
    _, ret1 = response_advantages(rewards, values, mask, 1.0, 1.0)
    torch.testing.assert_close(ret1[0, :3], torch.ones(3))


def test_clipped_losses_on_masked_token_batches():
    mask = torch.tensor([[1, 1, 0]])
    logp_old = torch.zeros(1, 3)
    logp_new = torch.log(torch.tensor([[1.5, 0.5, 7.0]]))
    adv = torch.tensor([[1.0, 1.0, 100.0]])
    loss, stats = ppo_policy_loss(logp_new, logp_old, adv, 0.2, mask)
    # token 0: max(-1.5, -1.2) = -1.2; token 1: max(-0.5, -0.8) = -0.5; token 2 is padding
    assert loss.item() == pytest.approx(-0.85)
    assert stats["clip_frac"].item() == pytest.approx(1.0)
    v_loss = ppo_value_loss(torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[0.5, 0.5, 0.0]]),
                            torch.tensor([[2.0, 0.0, 0.0]]), 0.2, mask)
    assert v_loss.item() == pytest.approx(0.5 * (1.69 + 0.09) / 2)


def test_response_mask_keeps_tokens_up_to_the_first_eos():
    eos = 0  # 1 is padding
    responses = torch.tensor([[5, 0, 1, 1], [5, 6, 7, 8], [0, 1, 1, 1], [5, 0, 0, 5]])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert torch.equal(response_mask(responses, eos), expected)


def test_adaptive_kl_controller_follows_ziegler():
    fixed = KLController(0.1)
    fixed.update(100.0, 64)
    assert fixed.value == 0.1
    ctl = KLController(0.1, target=6.0, horizon=10_000)
    ctl.update(12.0, 64)  # error clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10_000))
    ctl.update(5.7, 64)  # error -0.05
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10_000) * (1 - 0.05 * 64 / 10_000))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=10, num_minibatches=4), "multiple of num_minibatches"),
        (dict(kl_estimator="k2"), "kl_estimator"),
        (dict(gae_lambda=1.5), "gae_lambda"),
        (dict(kl_target=-1.0), "kl_target"),
        (dict(clip_coef_vf=0.0), "clip_coef_vf"),
        (dict(lr_schedule="cosine"), "lr_schedule"),
        (dict(value_model="shared"), "PPOConfig.value_model must be 'adapter' or 'reward', got 'shared'"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kwargs)


# --------------------------------------------------------------------------- models and sampling


def test_one_backward_pass_trains_both_adapters_and_the_value_head(tokenizer):
    model = PolicyValueModel(random_policy(tokenizer), PPOConfig(**SMALL).lora_config())
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10, 11, 12, 13, 14]], tokenizer.pad_token_id)
    _, _, values = model(ids, mask, response_length=3, temperature=1.0)
    assert torch.count_nonzero(values) == 0  # zero-initialised head...
    with torch.no_grad():  # ...which passes no gradient to the value adapter until it has learned something
        model.value_head.net.weight.normal_()
    logprobs, _, values = model(ids, mask, response_length=3, temperature=1.0)
    (logprobs.sum() + values.sum()).backward()
    params = dict(model.named_parameters())
    grads = {n: params[n].grad for n in model.trainable_names}
    assert all(g is not None for g in grads.values())
    for adapter in (POLICY, VALUE):  # LoRA B gets the gradient first (A's is 0 while B = 0)
        assert any(g.abs().sum() > 0 for n, g in grads.items() if f"lora_B.{adapter}." in n), adapter
    assert grads["value_head.net.bias"].abs().sum() > 0
    assert all(not p.requires_grad for n, p in params.items() if n not in model.trainable_names)


def test_the_output_layer_gets_a_policy_adapter_but_no_value_adapter(tokenizer):
    model = PolicyValueModel(random_policy(tokenizer), PPOConfig(**SMALL).lora_config())
    lm_head = [n for n in model.trainable_names if ".lm_head." in n]
    assert lm_head and all(f".{POLICY}." in n for n in lm_head)
    assert any(f".{VALUE}." in n and ".fc1." in n for n in model.trainable_names)


def _scored_batch(tokenizer):
    """Left-padded prompts and right-padded responses (one ends at EOS, one does not)."""
    q_ids, q_mask = left_pad([[5, 6, 7], [9, 10, 11, 12, 13]], tokenizer.pad_token_id)
    responses = torch.tensor([[20, 21, tokenizer.eos_token_id, tokenizer.pad_token_id], [22, 23, 24, 25]])
    return q_ids, q_mask, responses, response_mask(responses, tokenizer.eos_token_id)


def test_reward_model_features_are_its_hidden_states_after_each_prefix(tokenizer):
    rm = random_reward_model(tokenizer)
    scorer = RewardScorer(rm, tokenizer, tokenizer)
    q_ids, q_mask, responses, mask = _scored_batch(tokenizer)
    scores, features = scorer.score_with_features(q_ids, q_mask, responses, mask)
    torch.testing.assert_close(scores, scorer(q_ids, q_mask, responses, mask))  # the same pass scores
    assert features.shape == (2, 4, rm.config.hidden_size)
    assert torch.count_nonzero(features[0, 3]) == 0  # response padding
    for b in range(2):
        prompt = q_ids[b][q_mask[b].bool()]
        for t in range(int(mask[b].sum())):  # the state before response token t: prompt + t tokens
            prefix = torch.cat([prompt, responses[b, :t]])[None]
            with torch.no_grad():
                alone = rm(input_ids=prefix, attention_mask=torch.ones_like(prefix)).logits[0, 0]
            torch.testing.assert_close(rm.score(features[b, t])[0], alone, rtol=1e-4, atol=1e-5)


def test_reward_critic_starts_at_the_normalised_prefix_score_and_trains_only_its_head(tokenizer):
    rm = random_reward_model(tokenizer)
    model = PolicyValueModel(random_policy(tokenizer), PPOConfig(**SMALL).lora_config(), value_model="reward",
                             value_features_size=rm.config.hidden_size)
    assert not any(f".{VALUE}." in n for n in model.trainable_names)  # no value adapter
    q_ids, q_mask, responses, mask = _scored_batch(tokenizer)
    _, features = RewardScorer(rm, tokenizer, tokenizer).score_with_features(q_ids, q_mask, responses, mask)
    ids, attention = torch.cat([q_ids, responses], 1), torch.cat([q_mask, mask], 1)
    model.value_head.start_from(rm.score, mean=0.3, std=2.0)
    with torch.no_grad():
        _, _, values = model(ids, attention, 4, 1.0, value_features=features)
        expected = (rm.score(features).squeeze(-1) - 0.3) / 2.0 * mask
    torch.testing.assert_close(values, expected)  # the MLP correction starts at 0
    _, _, values = model(ids, attention, 4, 1.0, value_features=features)
    values.sum().backward()  # a value loss alone reaches the MLP's last layer and nothing else
    params = dict(model.named_parameters())
    for name in model.trainable_names:
        reached = params[name].grad is not None and params[name].grad.abs().sum() > 0
        assert reached == (name in ("value_head.net.2.weight", "value_head.net.2.bias")), name
    assert "value_head.prior_weight" not in model.trainable_names  # the prior is fixed
    with pytest.raises(ValueError, match="pass value_features"):
        model(ids, attention, 4, 1.0)


def test_reward_critic_needs_the_policys_tokenizer_and_a_score_layer(tokenizer, prompts):
    other = train_tokenizer(corpus.generate_reviews(200, 1), vocab_size=280, max_length=64)
    rm = random_reward_model(other)
    rm.config.pad_token_id = other.pad_token_id
    config = PPOConfig(**SMALL, value_model="reward")
    with pytest.warns(UserWarning, match="tokenizer differs"), pytest.raises(ValueError, match="use value_model='adapter'"):
        PPOTrainer(random_policy(tokenizer), tokenizer, rm, other, prompts, config)
    headless = random_reward_model(tokenizer)
    headless.score = torch.nn.Sequential(headless.score)
    with pytest.raises(ValueError, match="`score` layer .* has Sequential: use value_model='adapter'"):
        PPOTrainer(random_policy(tokenizer), tokenizer, headless, tokenizer, prompts, config)


def test_fuse_gelu_swaps_in_the_same_function():
    from transformers.activations import GELUTanh, NewGELUActivation

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), NewGELUActivation())
    x = torch.randn(16, 4) * 3
    before = model(x)
    fuse_gelu(model)
    assert isinstance(model[1], GELUTanh)
    assert (model(x) - before).abs().max() < 1e-6


def _prompts_and_responses() -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts + right-padded responses ``[4, 3 + 3]``; real lengths 6, 2, 3, 4."""
    prompts, responses = [[5, 6, 7], [8], [9, 10], [11, 12]], [[13, 14, 15], [16, 1, 1], [17, 1, 1], [18, 19, 1]]
    ids, prompt_mask = left_pad(prompts, 1)
    return torch.cat([ids, torch.tensor(responses)], 1), torch.cat([prompt_mask, (torch.tensor(responses) != 1).long()], 1)


def test_pack_rows_gives_every_real_token_its_own_slot_in_bins_as_wide_as_the_longest_row():
    _, mask = _prompts_and_responses()
    where, n_bins, width = pack_rows(mask)
    lengths = mask.sum(1)
    assert width == 6 and n_bins == 3  # first-fit decreasing: [6], [4, 2], [3]
    slots = where[mask.bool()]
    assert len(set(slots.tolist())) == int(lengths.sum()) and int(slots.max()) < n_bins * width
    for row in range(4):  # a row's tokens are consecutive and stay inside one bin
        row_slots = where[row][mask[row].bool()]
        assert torch.equal(row_slots, row_slots[0] + torch.arange(int(lengths[row])))
        assert int(row_slots[0]) // width == int(row_slots[-1]) // width


def test_packed_scoring_matches_a_padded_forward_pass(tokenizer):
    model = PolicyValueModel(random_policy(tokenizer), PPOConfig(**SMALL).lora_config())
    ids, mask = _prompts_and_responses()
    with torch.no_grad():
        packed, _ = model.response_logprobs(ids, mask, response_length=3, temperature=0.7, adapter=None)
        with model.adapter(None) as lm:
            padded = token_logprobs(lm, ids, mask, temperature=0.7)[:, -3:]
    response = mask[:, -3:]
    assert torch.equal(packed == 0, response == 0)  # 0 exactly on response padding
    assert ((packed - padded).abs() * response).max() < 1e-5  # no token attends across sequences


def test_sampler_log_probs_match_the_training_pass_with_left_padding(tokenizer):
    model = PolicyValueModel(random_policy(tokenizer), PPOConfig(**SMALL).lora_config())
    rows = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [20, 21]]
    ids, mask = left_pad(rows, tokenizer.pad_token_id)
    temperature, R = 0.7, 8
    uniforms = sampling_uniforms(0, 0, 0, range(3), R)
    with model.adapter(POLICY) as lm:
        responses, sample_logprobs = sample_tokens(lm, ids, mask, uniforms, temperature,
                                                   tokenizer.eos_token_id, tokenizer.pad_token_id)
    rmask = response_mask(responses, tokenizer.eos_token_id)
    full_ids, full_mask = torch.cat([ids, responses], 1), torch.cat([mask, rmask], 1)
    with torch.no_grad():
        logprobs, _ = model.response_logprobs(full_ids, full_mask, R, temperature)
    assert 0 < rmask.sum() < rmask.numel()  # some responses stopped at EOS, some did not
    assert ((logprobs - sample_logprobs).abs() * rmask).max() < 1e-5
    # the same prompt alone, unpadded, samples the same tokens with the same log-probs
    for b, row in enumerate(rows):
        alone, alone_mask = left_pad([row], tokenizer.pad_token_id)
        with model.adapter(POLICY) as lm:
            tokens, lp = sample_tokens(lm, alone, alone_mask, uniforms[b : b + 1], temperature,
                                       tokenizer.eos_token_id, tokenizer.pad_token_id)
        assert torch.equal(tokens[0], responses[b])
        assert (lp[0] - sample_logprobs[b]).abs().max() < 1e-5
    assert torch.equal(position_ids_from_mask(torch.tensor([[0, 0, 1, 1]])), torch.tensor([[0, 0, 0, 1]]))


def test_sampling_is_a_function_of_seed_step_and_batch_position():
    a = sampling_uniforms(0, 0, 3, [5, 9], 6)
    b = sampling_uniforms(0, 0, 3, [9], 6)
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a, sampling_uniforms(0, 0, 4, [5, 9], 6))
    assert not torch.equal(a, sampling_uniforms(1, 0, 3, [5, 9], 6))


def test_reward_model_with_a_different_tokenizer_is_rescored_from_text(tokenizer):
    other = train_tokenizer(corpus.generate_reviews(200, 1), vocab_size=280, max_length=64)
    rm = random_reward_model(other)
    rm.config.pad_token_id = other.pad_token_id
    with pytest.warns(UserWarning, match="tokenizer differs"):
        scorer = RewardScorer(rm, other, tokenizer)
    prompts = ["I watched this film and", "The plot"]
    responses = [" it was great.", " was dull"]
    q_ids, q_mask = left_pad(tokenize_prompts(tokenizer, prompts, 32, False), tokenizer.pad_token_id)
    r_rows = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in responses]
    r_rows[0].append(tokenizer.eos_token_id)
    r_ids = torch.full((2, max(map(len, r_rows))), tokenizer.pad_token_id)
    for b, row in enumerate(r_rows):
        r_ids[b, : len(row)] = torch.tensor(row)
    scores = scorer(q_ids, q_mask, r_ids, response_mask(r_ids, tokenizer.eos_token_id))
    texts = [prompts[0] + responses[0] + other.eos_token, prompts[1] + responses[1]]
    with torch.no_grad():
        expected = rm(**other(texts, padding=True, padding_side="right", return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(scores, expected)
    same = RewardScorer(random_reward_model(tokenizer), tokenizer, tokenizer)
    assert not same.retokenize


def test_prompts_too_long_for_the_context_are_rejected_or_truncated_loudly(tokenizer, prompts):
    long_prompt = " ".join(["the movie was long and"] * 40)
    with pytest.raises(ValueError, match="truncate_prompts"):
        make_trainer(tokenizer, [*prompts, long_prompt])
    with pytest.warns(UserWarning, match="truncated on the left"):
        trainer = make_trainer(tokenizer, [*prompts, long_prompt], truncate_prompts=True)
    # context 64 - 10 new tokens leaves 54 for the prompt
    assert max(len(p) for p in trainer.prompt_ids) == 54


def test_pad_token_must_differ_from_eos(tokenizer, prompts):
    policy = random_policy(tokenizer)
    same = train_tokenizer(corpus.generate_reviews(50, 0), vocab_size=280, max_length=64)
    same.pad_token = same.eos_token
    with pytest.raises(ValueError, match="pad token distinct from EOS"):
        PPOTrainer(policy, same, random_reward_model(tokenizer), tokenizer, prompts, PPOConfig(**SMALL))


# --------------------------------------------------------------------------- the trainer


@pytest.mark.parametrize("value_model", ["adapter", "reward"])
def test_first_step_starts_at_the_reference_with_ratio_exactly_one(tokenizer, prompts, value_model):
    trainer = make_trainer(tokenizer, prompts, value_model=value_model)
    metrics = trainer.step()
    assert metrics["kl/k1"] == 0.0 and metrics["kl/k3"] == 0.0  # LoRA starts as a no-op: policy = reference
    assert metrics["ppo/ratio_dev_at_start"] < 1e-6  # rollout and training log-probs agree
    assert metrics["rollout/logprob_gap"] < 1e-5  # the KV-cached sampler agrees with the full pass
    assert 0.0 < metrics["policy/no_eos_fraction"] < 1.0
    # reward normalisation: the reference's scores have mean 0 and std 1 (the rollout is 8 of them)
    assert abs(metrics["reward/proxy"]) < 3.0
    second = trainer.step()
    assert second["kl/k3"] > 0.0  # the policy moved
    assert second["ppo/ratio_dev_at_start"] < 1e-6
    assert trainer.history["step"] == [1.0, 2.0]


def test_adaptive_kl_coefficient_moves_toward_the_target(tokenizer, prompts):
    trainer = make_trainer(tokenizer, prompts, kl_target=1e-5, kl_horizon=100.0, kl_estimator="k3")
    first, second, third = (trainer.step() for _ in range(3))
    assert first["kl/coef"] == 0.05  # the coefficient used by each step is logged before its update
    assert second["kl/coef"] == pytest.approx(0.05 * (1 - 0.2 * 8 / 100))  # step 1: KL 0 < target
    assert second["kl/k3"] > 1.2e-5  # step 2: the policy moved, KL above the target (k3 is never negative) ...
    assert third["kl/coef"] == pytest.approx(second["kl/coef"] * (1 + 0.2 * 8 / 100))  # ... so beta grows


def _trainable(trainer):
    return trainer.policy_value.trainable_state_dict()


@pytest.mark.parametrize("value_model", ["adapter", "reward"])
def test_resume_from_checkpoint_continues_the_same_curve(tokenizer, prompts, tmp_path, value_model):
    straight = make_trainer(tokenizer, prompts, value_model=value_model)
    straight.train(4, progress=False)

    first = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path, checkpoint_every=2, value_model=value_model)
    first.train(2, progress=False)
    path = latest_checkpoint(tmp_path)
    assert path is not None and path.name == "step-000002"
    resumed = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path, checkpoint_every=2, value_model=value_model)
    resumed.load_checkpoint(path)
    resumed.train(2, progress=False)

    assert resumed.step_count == 4
    a, b = straight.history_arrays(), resumed.history_arrays()
    for key in a:
        if not key.startswith("time/"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for name, value in _trainable(straight).items():
        torch.testing.assert_close(_trainable(resumed)[name], value, rtol=1e-5, atol=1e-6)
    # keep_checkpoints=2: step-2 and step-4 remain, no temporary directories
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000002", "step-000004"]
    assert (path / "policy_adapter" / POLICY / "adapter_model.safetensors").is_file()


def test_resume_refuses_a_different_config(tokenizer, prompts, tmp_path):
    trainer = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path)
    trainer.step()
    path = trainer.save_checkpoint()
    other = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path, learning_rate=1e-3)
    with pytest.raises(ValueError, match="different config"):
        other.load_checkpoint(path)


def test_resume_refuses_a_checkpoint_of_other_models(tokenizer, prompts, tmp_path):
    trainer = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path)
    trainer.step()
    path = trainer.save_checkpoint()
    other = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path)
    other.model_sources = {**other.model_sources, "policy": "another-sft-stage"}  # e.g. a rebuilt SFT stage
    with pytest.raises(ValueError, match="trained from other models.*its own checkpoint_dir"):
        other.load_checkpoint(path)


@pytest.mark.parametrize("where, quantity", [("reward", "reward-model score"), ("policy", "policy log-probs")])
def test_nan_stops_training_naming_the_quantity_and_step_after_a_checkpoint(tokenizer, prompts, tmp_path, where, quantity):
    trainer = make_trainer(tokenizer, prompts, checkpoint_dir=tmp_path)
    trainer.step()
    with torch.no_grad():
        if where == "reward":
            trainer.scorer.model.score.weight.fill_(float("nan"))
        else:
            name = next(n for n in trainer.policy_value.trainable_names if f"lora_B.{POLICY}." in n)
            dict(trainer.policy_value.named_parameters())[name].fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=f"{quantity} is not finite .* at update 1.*fault-step-000001"):
        trainer.step()
    state = load_checkpoint(tmp_path / "fault-step-000001" / "state.pt")
    assert state["step"] == 1
    assert latest_checkpoint(tmp_path) is None  # the fault checkpoint is not a step checkpoint to resume from
