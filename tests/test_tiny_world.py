"""The offline tiny world: corpus generator, shipped artifacts, perplexity, samples, caching."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, PhiForCausalLM

from rlhf import corpus, tiny_world
from rlhf.gold import GoldRater
from rlhf.models import load_model
from rlhf.paths import cached_artifact, data_dir
from rlhf.policy import perplexity, sample_responses, unigram_perplexity

CONFIG = tiny_world.TinyWorldConfig()


# ----------------------------------------------------------------------------- the corpus
def test_generator_is_deterministic_and_seeded():
    assert corpus.generate_reviews(50, seed=4) == corpus.generate_reviews(50, seed=4)
    assert corpus.generate_reviews(50, seed=4) != corpus.generate_reviews(50, seed=5)


def test_reviews_are_well_formed_and_balanced():
    reviews = corpus.ReviewGenerator(seed=11).reviews(2000)
    for r in reviews:
        assert r.opening[0].isupper() and not r.opening.endswith(" ")
        assert r.continuation.startswith(" ") and r.text.endswith(".")
        assert "  " not in r.text and " ." not in r.text
        assert 2 <= r.text.count(".") <= 5
    positive = np.mean([r.sentiment == "positive" for r in reviews])
    assert 0.46 < positive < 0.54  # ~50/50 so that RLHF has room to move the policy


def test_articles_agree():
    text = " ".join(corpus.generate_reviews(3000, seed=2)).lower()
    for vowel_word in ("a awful", "a excellent", "a elegant", "a impressive", "a inventive", "a original",
                       "a engaging", "a annoying", "a awkward", "a ugly", "a uneven", "a entertaining"):
        assert f" {vowel_word} " not in text
    for consonant_word in ("an boring", "an dull", "an wonderful", "an charming"):
        assert f" {consonant_word} " not in text


def test_demonstrations_continue_their_prompt_grammatically():
    prompts, _ = corpus.generate_prompts(300, 0, seed=9)
    demos = corpus.generate_demonstrations(prompts, seed=1)
    predicate_starts = (" is ", " are ", " was ", " kept ", " bored ", " deserves ", " does ")
    for d in demos:
        kind = corpus.opening_kind(d["prompt"])
        starts_with_predicate = d["completion"].startswith(predicate_starts)
        assert starts_with_predicate == (kind in ("film", "aspect_sg", "aspect_pl")), d
        if kind == "aspect_pl":
            assert d["completion"].startswith(" are "), d
        if kind == "aspect_sg":
            assert d["completion"].startswith(" is "), d
        assert 1 <= d["completion"].count(".") <= 3
    assert 0.4 < np.mean([d["sentiment"] == "positive" for d in demos]) < 0.6


def test_input_validation_of_the_generator():
    with pytest.raises(ValueError, match="sentiment"):
        corpus.ReviewGenerator(0).review("neutral")
    with pytest.raises(ValueError, match="min_sentences"):
        corpus.ReviewGenerator(0).review(None, 3, 2)


# ----------------------------------------------------------------------------- shipped artifacts
def test_shipped_prompts_and_reviews_are_what_the_generator_makes():
    train, eval_ = tiny_world.prompts_from_generator(CONFIG)
    assert tiny_world.load_prompts("train") == train and len(train) == CONFIG.n_train_prompts
    assert tiny_world.load_prompts("eval") == eval_ and len(eval_) == CONFIG.n_eval_prompts
    assert not set(train) & set(eval_)
    assert tiny_world.load_reviews("eval") == tiny_world.eval_reviews_from_generator(CONFIG)
    with pytest.raises(ValueError, match="split"):
        tiny_world.load_prompts("test")


def test_shipped_model_matches_the_build_settings():
    base = tiny_world.base_model_dir()
    info = tiny_world.build_info()
    assert info["config"] == asdict(CONFIG), "data/tiny-world was built with other settings; rebuild it"
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    assert isinstance(model, PhiForCausalLM)
    expected = tiny_world.tiny_phi_config(tokenizer, CONFIG).to_diff_dict()
    actual = model.config.to_diff_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "max_position_embeddings", "rope_parameters", "hidden_act", "tie_word_embeddings",
                "eos_token_id", "pad_token_id"):
        assert actual.get(key) == expected.get(key), key
    assert info["tokenizer_size"] == len(tokenizer) <= model.config.vocab_size
    assert model.config.vocab_size % 64 == 0
    # safetensors only, and small enough to ship
    files = list(base.iterdir())
    assert (base / "model.safetensors").is_file() and not any(f.suffix == ".bin" for f in files)
    assert sum(f.stat().st_size for f in files) <= 25 * 2**20


def test_tokenizer_mirrors_phi2_special_tokens_and_round_trips():
    tokenizer = AutoTokenizer.from_pretrained(tiny_world.base_model_dir())
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    for text in tiny_world.load_reviews("eval")[:50] + ["Any text at all: naïve café, 42%!"]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer("This comedy")["input_ids"] + tokenizer(" is wonderful.")["input_ids"] == \
        tokenizer("This comedy is wonderful.")["input_ids"]  # prompt/response split is clean


def test_heldout_perplexity_is_far_below_the_unigram_baseline():
    model, tokenizer = load_model("tiny")
    eval_texts = tiny_world.load_reviews("eval")
    ppl = perplexity(model, tokenizer, eval_texts)
    unigram = unigram_perplexity(tokenizer, tiny_world.train_reviews()[:5000], eval_texts)
    assert ppl < 4.0 and unigram > 100.0
    assert ppl * 20 < unigram
    assert ppl == pytest.approx(tiny_world.build_info()["eval_perplexity"], rel=1e-3)


def test_base_model_writes_fluent_finished_reviews():
    model, tokenizer = load_model("tiny")
    prompts = tiny_world.load_prompts("eval")[:64]
    responses = sample_responses(model, tokenizer, prompts, max_new_tokens=96, seed=0)
    parts = GoldRater().components([p + r for p, r in zip(prompts, responses)])
    assert parts["fluency"].mean() > 0.9
    assert parts["unfinished"].mean() < 0.1  # it ends its reviews (EOS after a full stop)


def test_build_pipeline_runs_end_to_end_on_a_micro_config(tmp_path):
    micro = tiny_world.TinyWorldConfig(n_train_reviews=300, n_eval_reviews=20, n_train_prompts=16,
                                       n_eval_prompts=8, vocab_size=600, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=1, num_attention_heads=2, train_steps=3, batch_size=4)
    info = tiny_world.build_base(tmp_path, micro, progress=False)
    assert info["config"] == asdict(micro)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(model, PhiForCausalLM) and model.config.num_hidden_layers == 1
    assert tokenizer.pad_token == "<|pad|>"
    assert (tmp_path / "prompts_train.txt").read_text().count("\n") == 16
    assert json.loads((tmp_path / "build_info.json").read_text())["unigram_perplexity"] > 1


# ----------------------------------------------------------------------------- data dir and cache
def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RL_COURSE_DATA", str(tmp_path / "course"))
    assert data_dir() == tmp_path / "course" and data_dir().is_dir()
    monkeypatch.delenv("RL_COURSE_DATA")
    assert data_dir() == Path(tiny_world.__file__).resolve().parents[1] / "data"  # running from a checkout


def test_failed_build_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("RL_COURSE_DATA", str(tmp_path))
    target = tmp_path / "cache" / "thing"

    def broken(tmp: Path):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_artifact(target, broken)
    assert not target.exists() and not list(target.parent.glob(".thing-*"))
    assert cached_artifact(target, lambda tmp: (tmp / "ok.txt").write_text("ok")) == target
    assert (target / "ok.txt").read_text() == "ok"


def test_concurrent_processes_build_once(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from rlhf.paths import cached_artifact

        def build(tmp):
            with open({str(tmp_path / "calls.txt")!r}, "a") as f:
                f.write("built\\n")
            time.sleep(1.0)
            (tmp / "done.txt").write_text("done")

        target = cached_artifact(Path({str(tmp_path / "cache" / "thing")!r}), build)
        assert (target / "done.txt").read_text() == "done"
    """)
    env = {**os.environ, "RL_COURSE_DATA": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert (tmp_path / "calls.txt").read_text() == "built\n"


def test_stage_cache_key_follows_the_code_that_builds_it(monkeypatch, tmp_path):
    """A stage built by older code is never reused: the building modules' source is part of its key,
    and so are the settings, the preset's gold rater and the inputs."""
    from rlhf import presets, stages
    from rlhf.sft import SFTSettings

    monkeypatch.setenv("RL_COURSE_DATA", str(tmp_path))
    preset = presets.tiny()
    before = stages.stage_path(preset, "sft", SFTSettings(), [b"base"])
    assert before == stages.stage_path(preset, "sft", SFTSettings(), [b"base"])  # deterministic
    assert stages.stage_path(preset, "sft", SFTSettings(seed=1), [b"base"]) != before
    assert stages.stage_path(preset, "sft", SFTSettings(), [b"another base"]) != before
    phi2 = presets.phi2()
    assert stages.stage_path(phi2, "sft", SFTSettings(), [b"base"]).parent != before.parent  # its own folder
    identity = stages._code_identity()
    monkeypatch.setattr(stages, "_code_identity", lambda: identity + b"# an edited line")
    assert stages.stage_path(preset, "sft", SFTSettings(), [b"base"]) != before
    assert set(stages.STAGE_SOURCES) >= {"sft.py", "preferences.py", "reward.py", "gold.py", "stages.py"}


def test_stages_are_built_with_one_torch_thread(tmp_path):
    """Stage weights must not depend on the builder's core count; the caller's setting is restored."""
    import torch

    from rlhf import stages

    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stages._one_thread(lambda tmp: seen.append(torch.get_num_threads()))(tmp_path)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
