"""Peak GPU memory and seconds per PPO step of the course's PPO-RLHF at phi-2's size.

A randomly initialised ``PhiForCausalLM`` built from phi-2's configuration
(:func:`rlhf.memory.phi2_config`) has phi-2's exact shapes and cost, so nothing is
downloaded. The policy, value and reference share its frozen bf16 weights (LoRA adapters on
top); the reward model is a second random phi-2-shaped ``PhiForSequenceClassification``, as
chapter 8's reward model is a full model. A random policy rarely emits EOS, so every response
runs to ``--max-new-tokens``: the worst case for memory and time. Each critic
(``PPOConfig.value_model``: the value adapter, and the head on the reward model's hidden
states) is measured in turn, from fresh models.

Usage (needs a CUDA GPU; writes its section of ``benchmarks/RESULTS.md``)::

    python benchmarks/rlhf_gpu_memory.py                       # batch 32, minibatches of 4
    python benchmarks/rlhf_gpu_memory.py --batch-size 16 --num-minibatches 4
    python benchmarks/rlhf_gpu_memory.py --smoke               # tiny shapes on any device, prints only

``--smoke`` runs the same code path with a scaled-down configuration (CPU allowed) to check
the script itself; its figures are meaningless and are never written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- rlhf-gpu-memory -->", "<!-- /rlhf-gpu-memory -->"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32, help="prompts per PPO step")
    parser.add_argument("--num-minibatches", type=int, default=8, help="minibatches per PPO epoch")
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed PPO steps (after one warm-up step)")
    parser.add_argument("--value-models", nargs="+", choices=["adapter", "reward"], default=["adapter", "reward"],
                        help="the critics to measure (PPOConfig.value_model)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any device, print only")
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """Random phi-2-shaped policy and reward model in bf16 (fp32 on CPU), the tiny world's tokenizer and prompts."""
    from transformers import AutoTokenizer, PhiForCausalLM, PhiForSequenceClassification

    from rlhf.memory import phi2_config
    from rlhf.tiny_world import base_model_dir, load_prompts

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir())  # ids < 51200: valid phi-2 token ids
    shape = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4) if args.smoke else {}
    config = phi2_config(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **shape)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        policy = PhiForCausalLM(config).to(dtype).eval()
        config.num_labels = 1
        reward = PhiForSequenceClassification(config).to(dtype).eval()
    return policy, reward, tokenizer, load_prompts("train"), config, dtype


def measure(args: argparse.Namespace, value_model: str) -> dict:
    from rlhf.memory import ppo_memory_estimate
    from rlhf.ppo import PPOConfig, PPOTrainer

    policy, reward, tokenizer, prompts, config, dtype = build(args)
    ppo = PPOConfig(batch_size=args.batch_size, num_minibatches=args.num_minibatches, ppo_epochs=args.ppo_epochs,
                    max_new_tokens=args.max_new_tokens, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                    reward_norm_samples=args.batch_size, total_steps=args.steps + 1, learning_rate=1e-5,
                    value_model=value_model)
    trainer = PPOTrainer(policy, tokenizer, reward, tokenizer, prompts, ppo, seed=0)
    cuda = torch.cuda.is_available()
    trainer.compute_reward_statistics()
    trainer.step()  # warm-up (kernel selection, allocator growth)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        metrics = trainer.step()
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    prompt_tokens = max(len(ids) for ids in trainer.prompt_ids)
    estimate = ppo_memory_estimate(config, lora_r=args.lora_r, batch_size=args.batch_size,
                                   minibatch_size=args.batch_size // args.num_minibatches,
                                   prompt_length=prompt_tokens, response_length=args.max_new_tokens,
                                   weight_bytes=torch.finfo(dtype).bits / 8, value_model=value_model)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    del trainer, policy, reward
    if cuda:
        torch.cuda.empty_cache()
    return {
        "value_model": value_model,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "peak_gib": peak,
        "seconds_per_step": statistics.mean(seconds),
        # every PPO step samples batch x response tokens and trains on them ppo_epochs times
        "response_tokens_per_second": args.batch_size * metrics["policy/response_length"] / statistics.mean(seconds),
        "response_length": metrics["policy/response_length"],
        "prompt_tokens": prompt_tokens,
        "estimate": estimate,
        "versions": f"torch {torch.__version__}, CUDA {torch.version.cuda}",
    }


def section(args: argparse.Namespace, results: list[dict]) -> str:
    first = results[0]
    names = {"adapter": "value adapter (default)", "reward": "critic on the reward model"}
    header = "| | " + " | ".join(names[r["value_model"]] for r in results) + " |"
    rule = "|---|" + "---:|" * len(results)
    row = lambda label, key, fmt: f"| {label} | " + " | ".join(format(r[key], fmt) for r in results) + " |"
    measured = "\n".join([
        row("peak GPU memory (GiB, `torch.cuda.max_memory_allocated`)", "peak_gib", ".2f"),
        row(f"seconds per PPO step (mean of {args.steps}, after a warm-up step)", "seconds_per_step", ".2f"),
        row("response tokens per second (sampled and trained on)", "response_tokens_per_second", ".0f"),
        row("mean response length (tokens)", "response_length", ".1f"),
    ])
    estimates = "\n".join(f"| {part} | " + " | ".join(f"{r['estimate'][part]:.2f}" for r in results) + " |"
                          for part in first["estimate"])
    return f"""{BEGIN}
## PPO-RLHF at phi-2's size on one GPU (`benchmarks/rlhf_gpu_memory.py`)

Randomly initialised phi-2-shaped policy (LoRA r={args.lora_r} adapters on one frozen {first['dtype']} base,
reference = adapters disabled) and a second phi-2-shaped reward model, with each critic in turn; batch
{args.batch_size} prompts (up to {first['prompt_tokens']} tokens), {args.max_new_tokens} new tokens, {args.num_minibatches} minibatches x
{args.ppo_epochs} epochs. {first['device']}, {first['versions']}.

{header}
{rule}
{measured}

| estimate (`rlhf.memory.ppo_memory_estimate`, GiB) | {" | ".join(names[r["value_model"]] for r in results)} |
{rule}
{estimates}
{END}"""


def write_section(text: str) -> None:
    """Replace this script's section of RESULTS.md (or append it), leaving the rest alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(new)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("rlhf_gpu_memory.py measures GPU memory and needs a CUDA GPU; none is available here "
              "(torch.cuda.is_available() is False). Run it on a GPU machine, or pass --smoke to check "
              "the script on tiny shapes without recording anything.", file=sys.stderr)
        return 2
    results = [measure(args, value_model) for value_model in args.value_models]
    text = section(args, results)
    print(text)
    if not args.smoke:
        write_section(text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
