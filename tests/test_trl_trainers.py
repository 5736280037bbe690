"""rlhf.evaluation (the shared yardstick) and rlhf.trl_trainers (the reward functions handed to TRL, the DPO /
GRPO / RLOO wrappers), on a randomly initialised tiny Phi (seconds; no tiny-world build needed).
Notebook 12 runs the real comparison on the tiny world."""

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PhiConfig, PhiForCausalLM, PhiForSequenceClassification, PreTrainedTokenizerFast

from rlhf import evaluation as E
from rlhf import trl_trainers as T
from rlhf.scoring import RewardScorer

TEXTS = ["the movie was great and fun.", "the film was bad and boring.", "i loved the acting!",
         "a dull plot, sadly."] * 20
PROMPTS = ["the movie", "i loved", "the film was", "a dull"] * 4


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|pad|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", pad_token="<|pad|>")


def _config(tokenizer):
    return PhiConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id, num_labels=1,
                     resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)


@pytest.fixture(scope="module")
def policy(tokenizer):
    torch.manual_seed(0)
    return PhiForCausalLM(_config(tokenizer)).eval()


@pytest.fixture(scope="module")
def reward_model(tokenizer):
    torch.manual_seed(1)
    return PhiForSequenceClassification(_config(tokenizer)).eval()


def _count_gold(texts):
    """A stand-in gold rater: the fraction of words that are 'great'."""
    return np.array([t.split().count("great") / max(1, len(t.split())) for t in texts])


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_generations=1), "num_generations"),
    (dict(total_episodes=100), "multiple of the generation batch"),
    (dict(prompts_per_batch=3, num_generations=4, minibatches=4, total_episodes=48), "whole groups"),
    (dict(algorithm="ppo"), "algorithm"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(beta=-0.1), "beta"),
])
def test_group_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        T.GroupSettings(**kwargs)


def test_group_settings_count_steps_like_ppo():
    s = T.GroupSettings(total_episodes=640, prompts_per_batch=16, num_generations=4, minibatches=4, num_iterations=2)
    assert s.generation_batch == 64  # chapter 11's PPO batch
    assert s.optimizer_steps == 10 * 4 * 2


@pytest.mark.parametrize("kwargs", [dict(beta=0.0), dict(batch_size=0), dict(max_pairs=0), dict(lora_targets=())])
def test_dpo_settings_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        T.DPOSettings(**kwargs)


# --------------------------------------------------------------------------- evaluation


def test_evaluation_against_itself_has_zero_kl_and_is_reproducible(policy, tokenizer, reward_model):
    scorer = RewardScorer(reward_model, tokenizer, tokenizer)
    a = E.evaluate_policy(policy, tokenizer, PROMPTS, reference=policy, gold=_count_gold, reward_scorer=scorer,
                          max_new_tokens=8, seed=3)
    b = E.evaluate_policy(policy, tokenizer, PROMPTS, reference=policy, gold=_count_gold, max_new_tokens=8, seed=3,
                          batch_size=5)  # other batching, same samples: random numbers depend on prompt index only
    assert a.texts == b.texts
    assert np.allclose(a.kl, 0.0, atol=1e-4)
    assert a.n == len(PROMPTS) and a.proxy is not None and np.isfinite(a.proxy).all()
    assert ((a.length >= 1) & (a.length <= 8)).all()
    assert set(np.unique(a.eos)) <= {0.0, 1.0}
    assert all(t.startswith(p) for t, p in zip(a.texts, PROMPTS))
    summary = a.summary()
    assert set(summary) >= {"gold", "gold_sem", "kl", "length", "eos_fraction", "proxy"}
    c = E.evaluate_policy(policy, tokenizer, PROMPTS, reference=policy, gold=_count_gold, max_new_tokens=8, seed=4)
    assert c.texts != a.texts  # another seed, other samples


def test_evaluation_kl_is_the_summed_log_ratio_of_the_sampled_tokens(policy, tokenizer):
    torch.manual_seed(5)
    other = PhiForCausalLM(_config(tokenizer)).eval()
    ev = E.evaluate_policy(other, tokenizer, PROMPTS, reference=policy, gold=_count_gold, max_new_tokens=8, seed=0)
    s = E.sample_and_score(other, tokenizer, PROMPTS, reference=policy, max_new_tokens=8, seed=0)
    # recompute both log-probs independently with the chapter-7 helper on the same token ids
    from rlhf.tokens import token_logprobs

    kl = []
    with torch.no_grad():
        for q, qm, r, m in zip(s["query_ids"], s["query_mask"], s["responses"], s["mask"]):
            ids, att = torch.cat([q, r], 1), torch.cat([qm, m], 1)
            lp = token_logprobs(other, ids, att)[:, -r.shape[1]:]
            lr = token_logprobs(policy, ids, att)[:, -r.shape[1]:]
            kl.append(((lp - lr) * m).sum(1))
    assert np.allclose(ev.kl, torch.cat(kl).double().numpy(), atol=1e-4)


def test_head_is_the_evaluation_of_the_first_prompts(policy, tokenizer, reward_model):
    scorer = RewardScorer(reward_model, tokenizer, tokenizer)
    kwargs = dict(reference=policy, gold=_count_gold, reward_scorer=scorer, max_new_tokens=8, seed=3, batch_size=4)
    whole = E.evaluate_policy(policy, tokenizer, PROMPTS, **kwargs)
    first = E.evaluate_policy(policy, tokenizer, PROMPTS[:8], **kwargs)
    head = whole.head(8)
    assert head.n == 8 and head.texts == first.texts
    for name in ("gold", "kl", "length", "eos", "proxy"):  # the same batches: bit for bit
        np.testing.assert_array_equal(getattr(head, name), getattr(first, name))
    assert head.summary() == first.summary()
    for n in (0, len(PROMPTS) + 1):
        with pytest.raises(ValueError, match="head"):
            whole.head(n)


@pytest.mark.parametrize("last, steps", [(True, [2, 4]), (False, [2])])
def test_evaluations_during_training_skip_the_last_step_on_request(last, steps):
    from types import SimpleNamespace

    tracker = T._Progress(lambda model: {"gold": 0.5}, 2, 16, "test", progress=False, last=last)
    for step in range(1, 5):
        tracker.on_step_end(None, SimpleNamespace(global_step=step, max_steps=4), None)
    assert [row["step"] for row in tracker.rows] == steps
    assert [row["episodes"] for row in tracker.rows] == [16 * s for s in steps]


def test_peft_policy_is_its_own_reference(policy, tokenizer):
    import copy

    peft_policy = get_peft_model(copy.deepcopy(policy), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "fc1"]))
    ev = E.evaluate_policy(peft_policy, tokenizer, PROMPTS, gold=_count_gold, max_new_tokens=6)
    assert np.allclose(ev.kl, 0.0, atol=1e-4)  # a fresh LoRA adapter is a no-op
    with pytest.raises(ValueError, match="reference"):
        E.evaluate_policy(policy, tokenizer, PROMPTS, gold=_count_gold, max_new_tokens=6)


# --------------------------------------------------------------------------- reward functions


def test_reward_model_reward_matches_the_ppo_scorer_and_normalises(policy, tokenizer, reward_model):
    reward = T.RewardModelReward(reward_model, tokenizer, tokenizer, missing_eos_penalty=1.0)
    eos = tokenizer.eos_token_id
    completion_ids = [tokenizer(" was great.", add_special_tokens=False)["input_ids"] + [eos],
                      tokenizer(" was bad", add_special_tokens=False)["input_ids"]]
    prompts = ["the movie", "the film"]
    raw = reward.raw(prompts, completion_ids)
    scorer = RewardScorer(reward_model, tokenizer, tokenizer)
    for i, (p, c) in enumerate(zip(prompts, completion_ids)):
        q = torch.tensor([tokenizer(p, add_special_tokens=False)["input_ids"]])
        r = torch.tensor([c])
        assert raw[i] == pytest.approx(scorer(q, torch.ones_like(q), r, torch.ones_like(r)).item(), abs=1e-5)
    reward.normalize.mean, reward.normalize.std = 0.5, 2.0
    out = reward(prompts=prompts, completions=["", ""], completion_ids=completion_ids)
    assert out[0] == pytest.approx((raw[0] - 0.5) / 2.0, abs=1e-5)
    assert out[1] == pytest.approx((raw[1] - 0.5) / 2.0 - 1.0, abs=1e-5)  # no EOS: penalised like PPO
    stats = reward.calibrate(policy, PROMPTS, n=16, max_new_tokens=6)
    assert np.isfinite(stats.mean) and stats.std > 0


def test_rewards_calibrated_together_match_each_calibrated_alone(policy, tokenizer, reward_model):
    class Rater:
        def score(self, texts):
            return _count_gold(texts) + np.array([len(t) for t in texts]) / 100  # varies, so std > 0

    def rewards():
        return T.RewardModelReward(reward_model, tokenizer, tokenizer), T.GoldReward(tokenizer, rater=Rater())

    alone = rewards()
    for reward in alone:
        reward.calibrate(policy, PROMPTS, n=16, max_new_tokens=6, seed=2)
    together = rewards()
    stats = T.calibrate_rewards(together, policy, PROMPTS, n=16, max_new_tokens=6, seed=2)
    assert [s is r.normalize for s, r in zip(stats, together)] == [True, True]
    for a, b in zip(alone, together):
        assert (a.normalize.mean, a.normalize.std) == (b.normalize.mean, b.normalize.std)
    with pytest.raises(ValueError, match="tokenizer"):
        T.calibrate_rewards([together[0], T.GoldReward(copy.deepcopy(tokenizer))], policy, PROMPTS, n=4)


def test_gold_reward_rates_prompt_plus_completion(tokenizer):
    class Rater:
        def score(self, texts):
            self.seen = list(texts)
            return _count_gold(texts)

    rater = Rater()
    reward = T.GoldReward(tokenizer, rater=rater, missing_eos_penalty=None)
    ids = tokenizer(" great great.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    out = reward(prompts=["the movie was"], completions=["x"], completion_ids=[ids])
    assert rater.seen == ["the movie was great great."]
    assert out == [pytest.approx(_count_gold(["the movie was great great."])[0])]


# --------------------------------------------------------------------------- the TRL wrappers


def _margin(model, tokenizer, data):
    from rlhf.policy import response_logprobs

    chosen = response_logprobs(model, tokenizer, data["prompt"], data["chosen"])
    rejected = response_logprobs(model, tokenizer, data["prompt"], data["rejected"])
    return float(np.mean(chosen - rejected))


def test_dpo_raises_the_preferred_responses_log_ratio(policy, tokenizer):
    data = Dataset.from_dict({"prompt": ["the movie", "the film"] * 8,
                              "chosen": [" was great and fun.", " was great."] * 8,
                              "rejected": [" was bad and boring.", " was dull."] * 8})
    before = _margin(policy, tokenizer, data)
    rows = []
    result = T.train_dpo(policy, tokenizer, data, T.DPOSettings(batch_size=8, epochs=3, learning_rate=3e-3),
                         evaluate=lambda m: {"margin": _margin(m, tokenizer, data)}, evaluate_every=2)
    rows = result.evaluations
    assert isinstance(result.model, PeftModel) and result.method == "dpo" and result.episodes == 0
    assert result.train_seconds > 0 and len(rows) == 3 and rows[-1]["step"] == 6
    assert _margin(result.model, tokenizer, data) > before + 0.5
    assert any("loss" in row for row in result.log)
    assert _margin(policy, tokenizer, data) == pytest.approx(before, abs=1e-6)  # the input policy is untouched


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_group_methods_train_on_policy_with_the_given_reward(policy, tokenizer, algorithm):
    calls = []

    def reward(prompts, completions, completion_ids, **kwargs):
        calls.append(len(prompts))
        return [float(len(c)) for c in completion_ids]

    settings = T.GroupSettings(algorithm=algorithm, total_episodes=16, prompts_per_batch=4, num_generations=2,
                               minibatches=2, max_new_tokens=6, learning_rate=1e-3)
    result = T.train_group(policy, tokenizer, PROMPTS, reward, settings)
    assert result.method == algorithm and result.episodes == 16
    assert isinstance(result.model, PeftModel)
    assert sum(calls) == 16 and set(calls) == {8}  # one call per generation batch of 4 prompts x 2 samples
    assert result.settings["optimizer_steps"] == 4
    ev = E.evaluate_policy(result.model, tokenizer, PROMPTS[:4], gold=_count_gold, max_new_tokens=6)
    assert np.isfinite(ev.kl).all()
