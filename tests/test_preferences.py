"""Preference data: labelling with the annotator, TRL format, validation of bad input."""

import json

import numpy as np
import pytest
from datasets import Dataset

from rlhf.gold import Annotator, GoldRater
from rlhf.models import load_model
from rlhf.preferences import (
    PreferenceConfig,
    label_responses,
    load_hub_preferences,
    load_preference_dataset,
    noise_ceiling,
    sample_preference_pairs,
    validate_preference_dataset,
    write_jsonl,
)

GOOD = {"prompt": "This comedy", "chosen": " is wonderful.", "rejected": " is dull."}
REFERENCE = ["This comedy is wonderful. This comedy is dull. The acting is brilliant."]


@pytest.fixture(scope="module")
def rater():
    return GoldRater(reference_texts=REFERENCE)


def test_valid_rows_pass():
    validate_preference_dataset([GOOD, GOOD])
    validate_preference_dataset(Dataset.from_list([GOOD]))


def test_missing_column_is_named():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['rejected'\]"):
        validate_preference_dataset([{"prompt": "a", "chosen": "b"}])
    with pytest.raises(ValueError, match="lacks column"):
        validate_preference_dataset(Dataset.from_list([{"question": "a", "chosen": "b", "rejected": "c"}]))


@pytest.mark.parametrize("column", ["prompt", "chosen", "rejected"])
def test_empty_text_names_row_and_column(column):
    rows = [GOOD, {**GOOD, column: "   "}]
    with pytest.raises(ValueError, match=f"row 1, column '{column}': empty text"):
        validate_preference_dataset(rows)


def test_non_string_value_names_row_and_column():
    with pytest.raises(ValueError, match="row 0, column 'chosen': expected a string, got NoneType"):
        validate_preference_dataset([{**GOOD, "chosen": None}])


def test_overlong_text_names_row_and_column():
    long = {**GOOD, "rejected": " is" + " very" * 50 + " dull."}
    with pytest.raises(ValueError, match="row 2, column 'rejected'.*max_chars=100"):
        validate_preference_dataset([GOOD, GOOD, long], max_chars=100)


def test_overlong_in_tokens_names_row_and_column():
    _, tokenizer = load_model("tiny")
    long = {**GOOD, "chosen": " is" + " very" * 40 + " good."}
    validate_preference_dataset([GOOD], tokenizer=tokenizer, max_tokens=10)
    with pytest.raises(ValueError, match="row 1, column 'chosen'.*max_tokens=20"):
        validate_preference_dataset([GOOD, long], tokenizer=tokenizer, max_tokens=20)


def test_empty_dataset_and_wrong_type():
    with pytest.raises(ValueError, match="empty"):
        validate_preference_dataset(Dataset.from_list([GOOD]).select([]))
    with pytest.raises(TypeError, match="Dataset or a list of dicts"):
        validate_preference_dataset("prompt,chosen,rejected")


def test_settings_validation():
    with pytest.raises(ValueError):
        PreferenceConfig(beta=-1.0)
    with pytest.raises(ValueError):
        PreferenceConfig(temperature=0.0)


def test_a_careful_annotator_chooses_the_gold_winner(rater):
    prompts = ["This comedy"] * 4
    good, bad = [" is wonderful."] * 4, [" is dull."] * 4
    rows = label_responses(prompts, bad, good, Annotator(beta=1e6, seed=0, rater=rater))
    for row in rows:
        assert row["chosen"] == " is wonderful." and row["rejected"] == " is dull."
        assert row["chosen_gold"] > row["rejected_gold"] and row["p_agree_gold"] == 1.0
    assert noise_ceiling(rows) == 1.0


def test_a_coin_flip_annotator_has_ceiling_one_half(rater):
    rows = label_responses(["This comedy"] * 200, [" is wonderful."] * 200, [" is dull."] * 200,
                           Annotator(beta=0.0, seed=0, rater=rater))
    assert noise_ceiling(rows) == 0.5
    chose_good = np.mean([r["chosen"] == " is wonderful." for r in rows])
    assert 0.35 < chose_good < 0.65


def test_sampled_pairs_are_trl_format_and_seeded(rater):
    model, tokenizer = load_model("tiny")
    prompts = ["This comedy", "The acting in this drama", "I watched this western last night and"]
    kwargs = dict(pairs_per_prompt=2, max_new_tokens=16, seed=5)
    rows = sample_preference_pairs(model, tokenizer, prompts, Annotator(beta=10, seed=1, rater=rater), **kwargs)
    again = sample_preference_pairs(model, tokenizer, prompts, Annotator(beta=10, seed=1, rater=rater), **kwargs)
    assert rows == again and 1 <= len(rows) <= 6
    validate_preference_dataset(rows)
    for row in rows:
        assert row["prompt"] in prompts and row["chosen"] != row["rejected"]
        assert set(row) == {"prompt", "chosen", "rejected", "chosen_gold", "rejected_gold", "p_agree_gold"}


def test_jsonl_round_trip_and_split_filter(tmp_path):
    path = tmp_path / "prefs.jsonl"
    write_jsonl(path, [{**GOOD, "split": "train"}, {**GOOD, "split": "eval"}, {**GOOD, "split": "train"}])
    assert len(load_preference_dataset(path)) == 3
    assert load_preference_dataset(path, split="eval").column_names == ["prompt", "chosen", "rejected", "split"]
    assert len(load_preference_dataset(path, split="train")) == 2
    with pytest.raises(ValueError, match="split='test'"):
        load_preference_dataset(path, split="test")
    write_jsonl(path, [{"prompt": "x", "chosen": "y"}])
    with pytest.raises(ValueError, match="lacks column"):
        load_preference_dataset(path)


def test_malformed_jsonl_line_names_file_line_and_fields(tmp_path):
    path = tmp_path / "prefs.jsonl"
    good = json.dumps(GOOD)
    path.write_text(f"{good}\n\n{good[:-5]}\n{good}\n", encoding="utf-8")  # line 3 is cut short
    with pytest.raises(ValueError, match=r"prefs\.jsonl, line 3: not valid JSON .*\"prompt\".*\"chosen\".*\"rejected\""):
        load_preference_dataset(path)
    path.write_text(f"{good}\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: a JSON list, not an object"):
        load_preference_dataset(path)


def test_hub_dataset_offline_is_a_clear_connection_error():
    # conftest sets HF_DATASETS_OFFLINE=1: the real-data path must fail clearly (notebook 10 then skips it)
    with pytest.raises(ConnectionError, match="Anthropic/hh-rlhf"):
        load_hub_preferences("Anthropic/hh-rlhf", n=5)


def test_pairs_with_an_empty_response_are_dropped(rater, monkeypatch):
    """A sample that ends at once with EOS is an empty text, which no preference row may hold (seen with
    the phi-2 stand-in's SFT policy on torch 2.13): such pairs are dropped, like identical ones."""
    from rlhf import preferences

    samples = iter([[" is great.", "", " is dull.", " is fine."], [" is bad.", " is good.", " ", " is fine."]])
    monkeypatch.setattr(preferences, "sample_responses", lambda *args, **kwargs: next(samples))
    rows = sample_preference_pairs(None, None, ["A", "B", "C", "D"], Annotator(beta=10, seed=1, rater=rater),
                                   pairs_per_prompt=1)
    assert [r["prompt"] for r in rows] == ["A"]  # B and C have an empty response, D two identical ones
    validate_preference_dataset(rows)
