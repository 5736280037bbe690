"""Preference data: pairs of policy responses labelled by the simulated annotator, and validation.

A preference dataset has TRL's explicit-prompt format, one row per comparison::

    {"prompt": "This comedy", "chosen": " is wonderful.", "rejected": " is dull."}

``chosen`` and ``rejected`` are *completions* of ``prompt`` (the reward model reads
``prompt + completion``). The tiny world's rows also carry the gold scores of both
reviews (``chosen_gold``, ``rejected_gold``) and a ``split`` ("train" or "eval") so that
chapter 10 can compare the reward model with the ground truth; TRL ignores extra columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rl_basics.validation import check_fields
from rlhf.gold import Annotator, GoldRater
from rlhf.policy import sample_responses

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferenceConfig:
    """How the tiny world's preference data is sampled and labelled."""

    seed: int = 0
    """Seed of sampling and of the annotator's coin flips."""
    beta: float = 10.0
    """Annotator's Bradley–Terry inverse temperature on the gold scale [0, 1]: a gold gap of
    0.1 is labelled correctly 73% of the time, a gap of 0.3 95%."""
    pairs_per_train_prompt: int = 2
    """Comparisons per training prompt (two fresh responses each)."""
    pairs_per_eval_prompt: int = 2
    """Comparisons per eval prompt (held out for reward-model accuracy)."""
    max_new_tokens: int = 48
    """Response length limit when sampling (SFT responses are 10–40 tokens)."""
    temperature: float = 1.0
    """Sampling temperature of the policy."""
    max_train_prompts: int | None = None
    """Use only the first this many training prompts (None: all); phi-2's preset samples fewer."""
    max_eval_prompts: int | None = None
    """Use only the first this many held-out prompts (None: all)."""

    def __post_init__(self):
        check_fields(self, ">= 0", "beta")
        check_fields(self, "an integer >= 1", "pairs_per_train_prompt", "pairs_per_eval_prompt", "max_new_tokens")
        check_fields(self, "> 0", "temperature")
        check_fields(self, "an integer >= 1 or None", "max_train_prompts", "max_eval_prompts")


def label_responses(prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str],
                    annotator: Annotator) -> list[dict]:
    """Ask ``annotator`` to compare ``prompt + a`` with ``prompt + b`` for every row.

    Returns:
        rows with prompt, chosen, rejected, chosen_gold, rejected_gold and
        ``p_agree_gold`` (the annotator's probability of agreeing with the gold order; 1/2 for a tie).
    """
    texts_a = [p + a for p, a in zip(prompts, responses_a)]
    texts_b = [p + b for p, b in zip(prompts, responses_b)]
    gold_a, gold_b = annotator.rater.score(texts_a), annotator.rater.score(texts_b)
    a_wins = annotator.label_pairs(texts_a, texts_b)
    p_a = annotator.preference_probability(texts_a, texts_b)
    rows = []
    for i, prompt in enumerate(prompts):
        win = bool(a_wins[i])
        rows.append({
            "prompt": prompt,
            "chosen": responses_a[i] if win else responses_b[i],
            "rejected": responses_b[i] if win else responses_a[i],
            "chosen_gold": float(gold_a[i] if win else gold_b[i]),
            "rejected_gold": float(gold_b[i] if win else gold_a[i]),
            "p_agree_gold": float(max(p_a[i], 1 - p_a[i])) if gold_a[i] != gold_b[i] else 0.5,
        })
    return rows


def sample_preference_pairs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                            annotator: Annotator, pairs_per_prompt: int, *, max_new_tokens: int = 48,
                            temperature: float = 1.0, seed: int = 0) -> list[dict]:
    """Sample two responses per comparison from the policy and label them.

    Pairs whose two responses are identical carry no preference and are dropped, and so are pairs
    with an empty response (a sample that ended at once with EOS): a preference row needs two texts.
    """
    repeated = [p for p in prompts for _ in range(pairs_per_prompt)]
    responses_a = sample_responses(model, tokenizer, repeated, max_new_tokens=max_new_tokens,
                                   temperature=temperature, seed=seed)
    responses_b = sample_responses(model, tokenizer, repeated, max_new_tokens=max_new_tokens,
                                   temperature=temperature, seed=seed + 1)
    keep = [i for i in range(len(repeated))
            if responses_a[i] != responses_b[i] and responses_a[i].strip() and responses_b[i].strip()]
    return label_responses([repeated[i] for i in keep], [responses_a[i] for i in keep],
                           [responses_b[i] for i in keep], annotator)


def noise_ceiling(rows: Sequence[dict]) -> float:
    """Expected agreement of the annotator's labels with the gold preference over ``rows``."""
    return float(np.mean([r["p_agree_gold"] for r in rows]))


def validate_preference_dataset(data, max_chars: int = 4000, tokenizer: PreTrainedTokenizerBase | None = None,
                                max_tokens: int | None = None) -> None:
    """Check a preference dataset before training on it.

    Args:
        data: a ``datasets.Dataset`` or a list of dicts.
        max_chars: longest allowed prompt + completion, in characters.
        tokenizer, max_tokens: if both are given, also the longest prompt + completion in tokens.

    Raises:
        ValueError: naming the row and column of the first problem: a missing column,
            a value that is not a string, an empty text, or an over-long text.
    """
    if isinstance(data, Dataset):
        columns = data.column_names
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        columns = sorted({k for r in data for k in r}) if data else []
    else:
        raise TypeError(f"preference data must be a datasets.Dataset or a list of dicts, got {type(data).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"preference dataset lacks column(s) {missing}; it has {list(columns)}. "
            f"Expected TRL's explicit-prompt format with columns {list(REQUIRED_COLUMNS)}."
        )
    if len(data) == 0:
        raise ValueError("preference dataset is empty")
    for i, row in enumerate(data):
        for column in REQUIRED_COLUMNS:
            value = row.get(column)
            if not isinstance(value, str):
                raise ValueError(f"row {i}, column {column!r}: expected a string, got {type(value).__name__}")
            if not value.strip():
                raise ValueError(f"row {i}, column {column!r}: empty text")
        for column in ("chosen", "rejected"):
            text = row["prompt"] + row[column]
            if len(text) > max_chars:
                raise ValueError(f"row {i}, column {column!r}: prompt + {column} has {len(text)} characters, "
                                 f"more than max_chars={max_chars}; shorten or drop the row")
            if tokenizer is not None and max_tokens is not None:
                n = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1  # + EOS
                if n > max_tokens:
                    raise ValueError(f"row {i}, column {column!r}: prompt + {column} is {n} tokens with EOS, more "
                                     f"than max_tokens={max_tokens}; shorten or drop the row")


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a JSON-lines file, one per non-blank line.

    Raises:
        ValueError: naming the file, the line number and the expected fields, when a line is not
            valid JSON or not a JSON object.
    """
    rows = []
    expected = ", ".join(f'"{c}": "..."' for c in REQUIRED_COLUMNS)
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno}). Each line must "
                             f"be one JSON object such as {{{expected}}}; fix or delete the line.") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: a JSON {type(row).__name__}, not an object. Each line must be "
                             f"one JSON object such as {{{expected}}}.")
        rows.append(row)
    return rows


def load_preference_dataset(path: str | Path, split: str | None = None) -> Dataset:
    """Read a preference JSON-lines file as a ``datasets.Dataset``.

    Args:
        path: the file, e.g. ``rlhf.stages.preference_dataset_path()`` (the tiny world's, built on first use).
        split: keep only rows of this split ("train" or "eval"); None keeps all.
    """
    rows = read_jsonl(path)
    if split is not None:
        if split not in {r.get("split") for r in rows}:
            raise ValueError(f"no rows with split={split!r} in {path}")
        rows = [r for r in rows if r.get("split") == split]
    data = Dataset.from_list(rows)
    validate_preference_dataset(data)
    return data


def build_preference_stage(out_dir: Path, sft_dir: Path, settings: PreferenceConfig = PreferenceConfig(),
                           rater: GoldRater | None = None) -> None:
    """The cached preference stage: ``preferences.jsonl`` (train + eval rows) and ``stage.json``.

    Args:
        rater: the annotator's gold rater; None is the tiny world's. Pass the preset's
            (``preset.gold_rater()``, see :mod:`rlhf.presets`), so that labels and evaluation agree.
    """
    from rlhf.models import load_model
    from rlhf.tiny_world import load_prompts

    model, tokenizer = load_model(str(sft_dir))
    annotator = Annotator(beta=settings.beta, seed=settings.seed, rater=rater)
    rows = []
    for split, per_prompt, limit, seed in (
        ("train", settings.pairs_per_train_prompt, settings.max_train_prompts, settings.seed),
        ("eval", settings.pairs_per_eval_prompt, settings.max_eval_prompts, settings.seed + 100),
    ):
        split_rows = sample_preference_pairs(model, tokenizer, load_prompts(split)[:limit], annotator, per_prompt,
                                             max_new_tokens=settings.max_new_tokens,
                                             temperature=settings.temperature, seed=seed)
        rows += [{**r, "split": split} for r in split_rows]
    validate_preference_dataset(rows)
    write_jsonl(out_dir / "preferences.jsonl", rows)
    eval_rows = [r for r in rows if r["split"] == "eval"]
    record = {
        "settings": asdict(settings),
        "sft": str(sft_dir),
        "n_train": len(rows) - len(eval_rows),
        "n_eval": len(eval_rows),
        "eval_noise_ceiling": noise_ceiling(eval_rows),
        "gold_config": asdict(annotator.rater.config),
    }
    (out_dir / "stage.json").write_text(json.dumps(record, indent=2) + "\n")


def load_hub_preferences(name: str = "Anthropic/hh-rlhf", split: str = "test", n: int = 200) -> Dataset:
    """A real preference dataset from the hub, converted to prompt/chosen/rejected.

    hh-rlhf stores whole dialogues in ``chosen``/``rejected``; the shared beginning up to the
    last ``"\\n\\nAssistant:"`` becomes the prompt and the two answers the completions.

    Raises:
        ConnectionError: when the hub is unreachable or ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``
            is set and the dataset is not cached (the caller decides whether to skip).
    """
    from datasets import load_dataset

    try:
        raw = load_dataset(name, split=f"{split}[:{n}]")
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ...)
        raise ConnectionError(f"could not load {name!r} from the hub ({type(err).__name__}: {err})") from err
    marker = "\n\nAssistant:"
    rows = []
    for ex in raw:
        cut = ex["chosen"].rfind(marker) + len(marker)
        if cut < len(marker) or ex["rejected"][:cut] != ex["chosen"][:cut]:
            continue  # the two dialogues do not share their beginning: no common prompt
        chosen, rejected = ex["chosen"][cut:], ex["rejected"][cut:]
        if chosen.strip() and rejected.strip():
            rows.append({"prompt": ex["chosen"][:cut], "chosen": chosen, "rejected": rejected})
    data = Dataset.from_list(rows)
    validate_preference_dataset(data, max_chars=20_000)
    return data
