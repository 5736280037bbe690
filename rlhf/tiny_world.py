"""The offline tiny world: review corpus, BPE tokenizer, tiny ``PhiForCausalLM``, cached stages.

Everything a phi-2 pipeline needs, small enough for a laptop CPU:

- the corpus and prompts of :mod:`rlhf.corpus` (seeded, license-clean);
- a byte-level BPE tokenizer trained with ``tokenizers`` whose special tokens mirror
  phi-2's (``<|endoftext|>`` is BOS/EOS/UNK) plus a distinct pad token ``<|pad|>``;
- a ``PhiForCausalLM`` with phi-2's architecture scaled down (partial rotary embeddings,
  ``gelu_new``, untied biased LM head, embedding rows rounded up past the tokenizer size),
  pretrained on the corpus.

Both are saved with ``save_pretrained`` (safetensors) in ``data/tiny-world/`` and load with
``from_pretrained`` exactly like ``microsoft/phi-2``: ``tiny_world.base_model_dir()`` (shipped, or
built once). The stages built on top of it (SFT policy, preference data, reward model) are
:mod:`rlhf.stages`'s, cached in ``data/cache/``.

Rebuild the shipped artifacts: ``python -m rlhf.tiny_world build --force``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast

from rlhf import corpus
from rlhf.paths import cached_artifact, tiny_world_dir
from rlhf.policy import perplexity, unigram_perplexity

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
Split = Literal["train", "eval"]


@dataclass(frozen=True)
class TinyWorldConfig:
    """Settings of the shipped tiny world (corpus, tokenizer, tiny Phi and its pretraining)."""

    seed: int = 0
    """Master seed: corpus, prompts, initialisation and batches all derive from it."""
    n_train_reviews: int = 30_000
    """Pretraining reviews (regenerated from the seed; not shipped)."""
    n_eval_reviews: int = 500
    """Held-out reviews for perplexity (shipped as ``reviews_eval.txt``)."""
    n_train_prompts: int = 1024
    """Review openings used for SFT, preference data and PPO."""
    n_eval_prompts: int = 256
    """Held-out review openings, disjoint from the training ones."""
    vocab_size: int = 2048
    """BPE vocabulary target (the trainer stops earlier if it runs out of merges)."""
    hidden_size: int = 128
    """Model width (phi-2: 2560)."""
    intermediate_size: int = 512
    """MLP width, 4 x hidden as in phi-2 (10240)."""
    num_hidden_layers: int = 3
    """Decoder layers (phi-2: 32)."""
    num_attention_heads: int = 4
    """Heads; head dim 32, of which int(0.4 x 32) = 12 dims are rotary (phi-2: 32 heads of 80, 32 rotary)."""
    partial_rotary_factor: float = 0.4
    """Fraction of each head's dimensions that get rotary embeddings, as in phi-2."""
    max_position_embeddings: int = 256
    """Context window in tokens; prompt + response stay far below it."""
    train_steps: int = 800
    """Pretraining optimizer steps."""
    batch_size: int = 32
    """Reviews per pretraining step."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay to 10%)."""
    warmup_steps: int = 60
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""


def _seeds(config: TinyWorldConfig) -> dict[str, int]:
    """Independent seeds of the world's random streams."""
    return {"train_reviews": config.seed, "eval_reviews": config.seed + 1, "prompts": config.seed + 2,
            "init": config.seed + 3, "batches": config.seed + 4}


def train_reviews(config: TinyWorldConfig = TinyWorldConfig()) -> list[str]:
    """The pretraining corpus (deterministic in ``config.seed``)."""
    return corpus.generate_reviews(config.n_train_reviews, _seeds(config)["train_reviews"])


def eval_reviews_from_generator(config: TinyWorldConfig = TinyWorldConfig()) -> list[str]:
    """The held-out reviews as the generator produces them (what ``reviews_eval.txt`` holds)."""
    return corpus.generate_reviews(config.n_eval_reviews, _seeds(config)["eval_reviews"])


def prompts_from_generator(config: TinyWorldConfig = TinyWorldConfig()) -> tuple[list[str], list[str]]:
    """The train and eval prompts as the generator produces them."""
    return corpus.generate_prompts(config.n_train_prompts, config.n_eval_prompts, _seeds(config)["prompts"])


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (as GPT-2/phi-2 use) with phi-2's special tokens plus a pad token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )


def tiny_phi_config(tokenizer: PreTrainedTokenizerFast, config: TinyWorldConfig) -> PhiConfig:
    """phi-2's configuration scaled down; embedding rows rounded up to a multiple of 64 like phi-2's."""
    return PhiConfig(
        vocab_size=64 * math.ceil(len(tokenizer) / 64),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        partial_rotary_factor=config.partial_rotary_factor,
        hidden_act="gelu_new",
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        # phi-2 uses resid dropout 0.1; the tiny model trains for minutes on templated text and
        # the RL chapters need dropout off anyway, so all dropout is 0.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        bos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _batch(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch; padding is masked out of attention and loss."""
    length = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (length - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    labels = input_ids.masked_fill(attention == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def pretrain(model: PhiForCausalLM, tokenizer: PreTrainedTokenizerFast, texts: list[str],
             config: TinyWorldConfig, progress: bool = True) -> list[float]:
    """Next-token pretraining on whole reviews (each followed by EOS), one review per row.

    Returns:
        the training loss of every step.
    """
    rows = [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    rng = random.Random(_seeds(config)["batches"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.95))

    def lr_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_frac = (step - config.warmup_steps) / max(1, config.train_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_frac))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model.train()
    losses = []
    bar = tqdm(range(config.train_steps), desc="pretraining tiny Phi", disable=not progress)
    for _ in bar:
        batch = _batch([rows[rng.randrange(len(rows))] for _ in range(config.batch_size)], tokenizer.pad_token_id)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    return losses


def build_base(out_dir: Path, config: TinyWorldConfig = TinyWorldConfig(), progress: bool = True) -> dict:
    """Build the shipped tiny world into ``out_dir``: prompts, eval reviews, tokenizer, pretrained model.

    Returns:
        the build record also written to ``out_dir/build_info.json`` (settings, perplexities, CPU time).
    """
    start_cpu = _cpu_seconds()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(_seeds(config)["init"])
    texts = train_reviews(config)
    eval_texts = eval_reviews_from_generator(config)
    train_prompts, eval_prompts = prompts_from_generator(config)
    tokenizer = train_tokenizer(texts, config.vocab_size, config.max_position_embeddings)
    model = PhiForCausalLM(tiny_phi_config(tokenizer, config))
    losses = pretrain(model, tokenizer, texts, config, progress)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _write_lines(out_dir / "prompts_train.txt", train_prompts)
    _write_lines(out_dir / "prompts_eval.txt", eval_prompts)
    _write_lines(out_dir / "reviews_eval.txt", eval_texts)
    info = {
        "config": asdict(config),
        "tokenizer_size": len(tokenizer),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "final_train_loss": float(np.mean(losses[-50:])),
        "eval_perplexity": perplexity(model, tokenizer, eval_texts),
        "unigram_perplexity": unigram_perplexity(tokenizer, texts[:5000], eval_texts),
        "build_cpu_seconds": round(_cpu_seconds() - start_cpu, 1),
        "torch_version": torch.__version__,
    }
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_lines(path: Path, lines: list[str]) -> None:
    if any("\n" in line for line in lines):
        raise ValueError(f"{path.name}: a line contains a newline")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------- public accessors
def base_model_dir() -> Path:
    """Directory of the tiny base model and tokenizer (``from_pretrained``-ready).

    The repository ships it; outside a checkout it is built once (a few CPU minutes).
    """
    target = tiny_world_dir()
    if (target / "model.safetensors").is_file():
        return target
    if target.exists():  # something partial: never mix files of two builds
        raise FileNotFoundError(
            f"{target} exists but holds no model.safetensors; remove it or run `python -m rlhf.tiny_world build --force`"
        )
    return cached_artifact(target, lambda tmp: build_base(tmp))


def load_prompts(split: Split) -> list[str]:
    """The review openings of ``split`` ("train" or "eval") used as prompts."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    return _read_lines(base_model_dir() / f"prompts_{split}.txt")


def load_reviews(split: Split) -> list[str]:
    """Whole reviews: "train" is the pretraining corpus (regenerated), "eval" the shipped held-out set."""
    if split == "train":
        return train_reviews()
    if split == "eval":
        return _read_lines(base_model_dir() / "reviews_eval.txt")
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")


def build_info() -> dict:
    """The shipped model's build record (settings, perplexities, CPU time)."""
    return json.loads((base_model_dir() / "build_info.json").read_text())


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """``python -m rlhf.tiny_world build [--force] [--out DIR]`` (the stages: ``python -m rlhf.stages build``)."""
    parser = argparse.ArgumentParser(prog="python -m rlhf.tiny_world", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the tiny world's base model (the stages: python -m rlhf.stages build)")
    build.add_argument("--out", type=Path, default=None, help="write the base model here instead of the data directory")
    build.add_argument("--force", action="store_true", help="rebuild the base model even if it exists")
    args = parser.parse_args(argv)

    start = time.time()
    if args.out is not None:
        info = build_base(args.out)
        print(json.dumps(info, indent=2))
        return 0
    target = tiny_world_dir()
    if args.force and target.exists():
        tmp = target.with_name(target.name + ".rebuild")
        shutil.rmtree(tmp, ignore_errors=True)
        info = build_base(tmp)
        shutil.rmtree(target)
        tmp.rename(target)
        print(json.dumps(info, indent=2))
    else:
        print(f"base model: {base_model_dir()}")
    print(f"done in {time.time() - start:.0f} s wall, {_cpu_seconds():.0f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
