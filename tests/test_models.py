"""The model loader (tiny checkpoint, LoRA, refusals, offline errors) and the policy helpers."""

import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, PhiForCausalLM, PhiForSequenceClassification

from rlhf.models import (
    PHI2,
    PHI2_LORA_TARGETS,
    ModelNotAvailableError,
    default_dtype,
    load_model,
    load_reward_model,
    resolve_model_name,
)
from rlhf.policy import per_token_kl, response_logprobs, sample_responses, token_logprobs
from rlhf.tiny_world import base_model_dir


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def test_resolve_names(monkeypatch):
    monkeypatch.delenv("RL_COURSE_MODEL", raising=False)
    assert resolve_model_name("tiny") == str(base_model_dir())
    assert resolve_model_name(base_model_dir()) == str(base_model_dir())
    assert resolve_model_name(PHI2) == PHI2
    if not torch.cuda.is_available():
        assert resolve_model_name("auto") == str(base_model_dir())
    monkeypatch.setenv("RL_COURSE_MODEL", PHI2)
    assert resolve_model_name("auto") == PHI2  # one setting switches every notebook


@pytest.mark.parametrize("name", ["phi-2", "./no/such/dir", "gpt2 large", ""])
def test_unknown_model_name_is_a_clear_error(name):
    with pytest.raises(ValueError, match="unknown model name"):
        resolve_model_name(name)


def test_non_string_name_and_dir_without_config(tmp_path):
    with pytest.raises(TypeError, match="string or Path"):
        resolve_model_name(3)
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model_name(str(tmp_path))


def test_loads_tiny_checkpoint_for_inference(tiny):
    model, tokenizer = tiny
    assert isinstance(model, PhiForCausalLM)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.rope_parameters["partial_rotary_factor"] == 0.4 and model.config.hidden_act == "gelu_new"


def test_lora_adapter_on_phi2_module_names():
    model, _ = load_model("tiny", lora=True, for_training=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for target in PHI2_LORA_TARGETS:
        assert any(f".{target}.lora_A" in n for n in trainable), target
    assert model.training
    # LoRA starts as the identity (B = 0): same outputs as the base with the adapter disabled.
    ids = torch.tensor([[10, 20, 30, 40]])
    with torch.no_grad():
        with_adapter = model(input_ids=ids).logits
        with model.disable_adapter():
            without = model(input_ids=ids).logits
    torch.testing.assert_close(with_adapter, without)


def test_lora_accepts_a_config_and_rejects_other_types():
    from peft import LoraConfig

    model, _ = load_model("tiny", lora=LoraConfig(r=2, target_modules=["fc1"], task_type="CAUSAL_LM"))
    names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert names and all(".fc1." in n for n in names)
    with pytest.raises(TypeError, match="LoraConfig"):
        load_model("tiny", lora="yes")


def test_loaders_take_no_remote_code_switch():
    """There is no way to ask the loaders to run code downloaded with a model."""
    remote = {"trust_remote_code": True}
    with pytest.raises(TypeError, match="trust_remote_code"):
        load_model("tiny", **remote)
    with pytest.raises(TypeError, match="trust_remote_code"):
        load_reward_model(str(base_model_dir()), **remote)


def test_missing_offline_model_names_the_model_and_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("rl-course-tests/not-a-cached-model")
    message = str(err.value)
    assert "rl-course-tests/not-a-cached-model" in message
    assert "HF_HUB_OFFLINE=0" in message and 'load_model("tiny")' in message


def test_missing_offline_phi2_is_reported_clearly(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: no phi-2, no stand-in
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="microsoft/phi-2"):
        load_model(PHI2)


def _copy_tiny(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(base_model_dir(), target, ignore=shutil.ignore_patterns("*.txt", "build_info.json"))
    return target


def test_tokenizer_without_eos_is_rejected(tmp_path):
    target = _copy_tiny(tmp_path)
    tok = AutoTokenizer.from_pretrained(target)
    tok.eos_token = None
    tok.save_pretrained(target)
    with pytest.raises(ValueError, match="no EOS token"):
        load_model(str(target))


def test_missing_pad_token_is_added_distinct_from_eos(tmp_path):
    target = _copy_tiny(tmp_path)
    tok = AutoTokenizer.from_pretrained(target)
    tok.pad_token = None  # like phi-2's tokenizer
    tok.save_pretrained(target)
    model, tokenizer = load_model(str(target))
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert len(tokenizer) <= model.get_input_embeddings().weight.shape[0]


def test_dtype_choice_and_fp16_warning():
    assert default_dtype("cpu") == torch.float32
    with pytest.warns(UserWarning, match="overflow"):
        model, _ = load_model("tiny", dtype=torch.float16)
    assert model.dtype == torch.float16
    with pytest.raises(TypeError, match="torch.dtype"):
        load_model("tiny", dtype="bf16")


def test_reward_model_from_a_causal_checkpoint_has_one_output():
    model, tokenizer = load_reward_model(str(base_model_dir()))
    assert isinstance(model, PhiForSequenceClassification) and model.config.num_labels == 1
    batch = tokenizer(["This comedy is wonderful.", "This comedy"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 1)


# ----------------------------------------------------------------------------- the policy view
def test_response_logprob_is_sum_of_stepwise_logprobs(tiny):
    model, tokenizer = tiny
    prompts = ["This comedy", "I watched this western last night and"]
    responses = [" is wonderful.", " left the theater early. Skip this one."]
    batched = response_logprobs(model, tokenizer, prompts, responses)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        p_ids = tokenizer(p)["input_ids"]
        r_ids = tokenizer(r)["input_ids"] + [tokenizer.eos_token_id]
        total, ids = 0.0, list(p_ids)
        with torch.no_grad():
            for action in r_ids:  # one step of the episode: state = ids so far, action = next token
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
                total += torch.log_softmax(logits, -1)[action].item()
                ids.append(action)
        assert batched[i] == pytest.approx(total, abs=1e-4)  # left padding changes nothing


def test_token_logprobs_with_temperature_match_scaled_softmax(tiny):
    model, _ = tiny
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
        lp = token_logprobs(model, ids, mask, temperature=0.7)[0]
    expected = torch.log_softmax(logits[:-1] / 0.7, -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    torch.testing.assert_close(lp[1:], expected)
    assert lp[0] == 0


def test_kl_of_a_policy_with_itself_is_zero_and_per_token(tiny):
    model, tokenizer = tiny
    prompts = ["This comedy", "The acting in this drama"]
    responses = [" is wonderful.", " is dull. Skip this one."]
    for estimator in ("k1", "k3", "exact"):
        kl = per_token_kl(model, model, tokenizer, prompts, responses, estimator=estimator)
        assert [len(k) for k in kl] == [len(tokenizer(r)["input_ids"]) + 1 for r in responses]
        assert all(np.allclose(k, 0.0, atol=1e-6) for k in kl)
    with pytest.raises(ValueError, match="estimator"):
        per_token_kl(model, model, tokenizer, prompts, responses, estimator="k2")


def test_kl_estimators_against_a_different_policy(tiny):
    model, tokenizer = tiny
    other, _ = load_model("tiny")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.02 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    prompts = ["This comedy", "The acting in this drama"]
    responses = sample_responses(model, tokenizer, prompts, max_new_tokens=20, seed=0)
    k1 = np.concatenate(per_token_kl(model, other, tokenizer, prompts, responses, estimator="k1"))
    k3 = np.concatenate(per_token_kl(model, other, tokenizer, prompts, responses, estimator="k3"))
    exact = np.concatenate(per_token_kl(model, other, tokenizer, prompts, responses, estimator="exact"))
    assert np.all(k3 >= 0) and np.all(exact >= 0) and exact.sum() > 0
    np.testing.assert_allclose(k3, np.exp(-k1) - 1 + k1, rtol=1e-6, atol=1e-9)  # k3 = (r - 1) - log r


def test_sampling_is_seeded_and_validated(tiny):
    model, tokenizer = tiny
    prompts = ["This comedy", "The acting in this drama"]
    a = sample_responses(model, tokenizer, prompts, max_new_tokens=12, seed=3)
    b = sample_responses(model, tokenizer, prompts, max_new_tokens=12, seed=3)
    assert a == b and all(isinstance(r, str) for r in a)
    assert tokenizer.padding_side == "right"  # restored after left-padded generation
    with pytest.raises(ValueError, match="temperature"):
        sample_responses(model, tokenizer, prompts, temperature=0.0)
    with pytest.raises(TypeError, match="list of strings"):
        sample_responses(model, tokenizer, "This comedy")
