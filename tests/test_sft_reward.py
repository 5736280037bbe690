"""The cached SFT, preference and reward-model stages of the tiny world, and their settings.

The stages are built once per machine (``data/cache``, file-locked) and reused by notebooks
09 and 10; the assertions below recompute the key numbers from the saved models instead of
trusting the records.
"""

import json

import numpy as np
import pytest

from rlhf import sft, stages, tiny_world
from rlhf.models import load_model, load_reward_model
from rlhf.preferences import load_preference_dataset, noise_ceiling, validate_preference_dataset
from rlhf.reward import RewardSettings, pairwise_accuracy, reward_config, score, stage_record


@pytest.fixture(scope="module")
def sft_dir():
    return stages.sft_model_dir()


@pytest.fixture(scope="module")
def reward_dir():
    return stages.reward_model_dir()


def test_settings_are_validated():
    with pytest.raises(ValueError):
        sft.SFTSettings(learning_rate=0.0)
    with pytest.raises(ValueError):
        sft.SFTSettings(demos_per_prompt=0)
    with pytest.raises(ValueError):
        RewardSettings(batch_size=0)


def test_trainer_configs_never_report_or_push(tmp_path):
    for config in (sft.sft_config(sft.SFTSettings(), tmp_path), reward_config(RewardSettings(), tmp_path)):
        assert config.report_to == [] or config.report_to == "none" or config.report_to == ["none"]
        assert not config.push_to_hub and config.save_strategy == "no"


def test_bad_demonstrations_are_rejected():
    model, tokenizer = load_model("tiny", for_training=True)
    with pytest.raises(ValueError, match="empty"):
        sft.train_sft(model, tokenizer, [])
    with pytest.raises(ValueError, match="demonstration 1: 'completion'"):
        sft.train_sft(model, tokenizer, [{"prompt": "This comedy", "completion": " is fun."},
                                         {"prompt": "This drama", "completion": ""}])


def test_sft_lowers_the_heldout_demonstration_loss(sft_dir):
    record = stage_record(sft_dir)
    eval_demos = sft.demonstrations(tiny_world.load_prompts("eval"), sft.SFTSettings(), seed_offset=1)
    base, tokenizer = load_model("tiny")
    tuned, _ = load_model(str(sft_dir))
    before = sft.demonstration_loss(base, tokenizer, eval_demos)
    after = sft.demonstration_loss(tuned, tokenizer, eval_demos)
    assert before == pytest.approx(record["eval_demonstration_loss_before"], rel=1e-4)
    assert after == pytest.approx(record["eval_demonstration_loss_after"], rel=1e-4)
    assert after < before - 0.05  # nats per completion token
    assert record["train_loss"][-1] < record["train_loss"][0]


def test_cached_preferences_are_valid_trl_rows(sft_dir):
    path = stages.preference_dataset_path()
    train, eval_ = load_preference_dataset(path, "train"), load_preference_dataset(path, "eval")
    assert len(train) > 1500 and len(eval_) > 400
    validate_preference_dataset(train)
    row = train[0]
    assert row["prompt"] in tiny_world.load_prompts("train")
    assert not row["chosen"].startswith(row["prompt"])  # completions, as TRL's explicit-prompt format wants
    ceiling = noise_ceiling(list(eval_))
    assert 0.6 < ceiling < 0.98  # the annotator is noisy but informative
    record = json.loads((path.parent / "stage.json").read_text())
    assert record["eval_noise_ceiling"] == pytest.approx(ceiling)


def test_reward_model_reaches_90_percent_of_the_noise_ceiling(reward_dir):
    model, tokenizer = load_reward_model(str(reward_dir))
    eval_rows = list(load_preference_dataset(stages.preference_dataset_path(), split="eval"))
    result = pairwise_accuracy(model, tokenizer, eval_rows)
    ceiling = noise_ceiling(eval_rows)
    assert result["label_accuracy"] >= 0.9 * ceiling
    assert result["gold_accuracy"] >= 0.9 * ceiling  # it also ranks by the ground truth
    assert result["label_accuracy"] == pytest.approx(stage_record(reward_dir)["eval_label_accuracy"])


def test_reward_model_tracks_the_gold_rater_on_heldout_reviews(reward_dir):
    model, tokenizer = load_reward_model(str(stages.reward_model_dir()))
    rows = list(load_preference_dataset(stages.preference_dataset_path(), split="eval"))
    prompts = [r["prompt"] for r in rows]
    rm = np.concatenate([score(model, tokenizer, prompts, [r["chosen"] for r in rows]),
                         score(model, tokenizer, prompts, [r["rejected"] for r in rows])])
    gold = np.array([r["chosen_gold"] for r in rows] + [r["rejected_gold"] for r in rows])
    assert np.corrcoef(rm, gold)[0, 1] > 0.7


def test_score_reads_prompt_response_and_eos(reward_dir):
    model, tokenizer = load_reward_model(str(reward_dir))
    prompts, responses = ["This comedy", "The acting in this drama"], [" is wonderful.", " is dull."]
    batch = tokenizer([p + r + tokenizer.eos_token for p, r in zip(prompts, responses)], return_tensors="pt",
                      padding=True)
    expected = model(**batch).logits[:, 0].detach().numpy()
    np.testing.assert_allclose(score(model, tokenizer, prompts, responses), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="pair up"):
        score(model, tokenizer, prompts, responses[:1])
