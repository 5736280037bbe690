"""PPO-RLHF at phi-2's size on one GPU: peak memory, seconds per step, the 15 GiB question, TRL's PPO.

A randomly initialised ``PhiForCausalLM`` of phi-2's configuration (:func:`rlhf.memory.phi2_config`)
has phi-2's exact shapes and cost, so nothing is downloaded. It is saved once (bf16 safetensors)
and loaded back through the course's own loaders (:func:`rlhf.models.load_model` and
``load_reward_model``: the reward model is the same checkpoint with a new scalar head, as chapter
8 starts it), with the phi-2 preset's PPO settings (:func:`rlhf.presets.phi2`: batch 32,
minibatches of 4, 48-token responses, LoRA rank 16). A random policy rarely emits EOS, so every
response runs to the length limit: the worst case for memory and time.

What one call measures (about 6 minutes on an H200):

1. **bf16** with each critic (``value_model="adapter"`` and ``"reward"``): peak memory
   (``torch.cuda.max_memory_allocated``) and seconds per PPO step after a warm-up step, split into
   generation, scoring (reward model, reference, values) and the PPO update; generation tokens per
   second, and decoding's fraction of the memory-bandwidth bound (bytes of weights and KV cache read
   per decode step / HBM bandwidth).
2. **The 15 GiB question**: the same step with ``torch.cuda.set_per_process_memory_fraction`` at
   15 GiB of the device, for the T4 path of the preset (a 4-bit NF4 base computing in fp32, fp32
   LoRA: what ``load_model`` picks on a GPU without native bf16) and for bf16, each critic: passes
   or OOM, and the peak.
3. **TRL 1.12.0's PPOTrainer** at the same size and PPO settings, its four-model design (policy,
   reference copy, reward model, value model; all weights trained), in bf16, in a subprocess
   (``benchmarks/trl_ppo_peer.py``): peak memory and episodes per second over the same number of
   steps as ours, warm-up included on both sides. Needs ``trl==1.12.0`` importable (skipped if not).

Usage::

    python benchmarks/rlhf_gpu_memory.py            # a CUDA GPU; writes its section of RESULTS.md
    python benchmarks/rlhf_gpu_memory.py --smoke    # tiny shapes on any device (CPU too): checks the script

``--smoke`` runs the same code path on a scaled-down configuration (the 4-bit path included,
which bitsandbytes runs on a CPU too) and never writes RESULTS.md; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- rlhf-gpu-memory -->", "<!-- /rlhf-gpu-memory -->"
HBM_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12, "L4": 0.3e12, "T4": 0.32e12}
"""Peak HBM bandwidth in bytes/s by GPU name (vendor data sheets; H100 SXM, A100 80GB)."""
GIB = 2**30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed PPO steps after one warm-up step")
    parser.add_argument("--cap-gib", type=float, default=15.0, help="the memory cap of phase 2 (GiB)")
    parser.add_argument("--no-trl", action="store_true", help="skip phase 3 (TRL's PPOTrainer)")
    parser.add_argument("--trl-only", action="store_true", help="phase 3 alone; prints TRL's result as JSON")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the random checkpoint goes (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any device, print only")
    return parser.parse_args(argv)


def make_checkpoint(directory: Path, smoke: bool) -> Path:
    """A random phi-2-shaped causal LM (bf16) with the tiny world's tokenizer (its ids are valid phi-2 ids)."""
    from transformers import AutoTokenizer, PhiForCausalLM

    from rlhf.memory import phi2_config
    from rlhf.tiny_world import base_model_dir

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir())
    shape = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=len(tokenizer)) if smoke else {}
    config = phi2_config(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **shape)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = PhiForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    del model
    return directory


def _timed(obj, name: str, totals: dict[str, float]) -> None:
    """Wrap ``obj.name`` so that its synchronised wall-clock time accumulates in ``totals[name]``."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start

    setattr(obj, name, wrapper)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def measure(checkpoint: Path, args: argparse.Namespace, *, value_model: str, quantization: str | None,
            cap_gib: float | None) -> dict:
    """One PPO set-up: load, one warm-up step, ``args.steps`` timed steps; OOM is a result, not an error."""
    from rlhf.models import load_model, load_reward_model
    from rlhf.ppo import PPOTrainer
    from rlhf.presets import phi2
    from rlhf.tiny_world import load_prompts

    cuda = torch.cuda.is_available()
    label = {"value_model": value_model, "path": "4-bit base, fp32 compute (T4 path)" if quantization else "bf16 base",
             "cap_gib": cap_gib}
    _free()
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * GIB / total) if cap_gib else 1.0)
    dtype = None if quantization else (torch.bfloat16 if cuda else torch.float32)
    objects: list = []
    try:
        policy, tokenizer = load_model(str(checkpoint), dtype=dtype, quantization=quantization)
        objects.append(policy)
        reward, reward_tokenizer = load_reward_model(str(checkpoint), dtype=dtype, quantization=quantization)
        objects.append(reward)
        config = phi2().ppo_config(value_model=value_model, total_steps=args.steps + 1,
                                   reward_norm_samples=phi2().ppo["batch_size"])
        if args.smoke:
            config = phi2().ppo_config(value_model=value_model, total_steps=args.steps + 1, batch_size=4,
                                       num_minibatches=2, update_epochs=1, max_new_tokens=4, reward_norm_samples=4)
        trainer = PPOTrainer(policy, tokenizer, reward, reward_tokenizer, load_prompts("train"), config, seed=0)
        objects.append(trainer)
        totals: dict[str, float] = {}
        for name in ("_sample", "rollout", "ppo_update"):
            _timed(trainer, name, totals)
        trainer.compute_reward_statistics()
        start = time.perf_counter()
        trainer.step()  # warm-up: kernel selection, allocator growth
        warmup = time.perf_counter() - start
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        totals.clear()
        start = time.perf_counter()
        lengths = []
        for _ in range(args.steps):
            lengths.append(trainer.step()["policy/response_length"])
        seconds = (time.perf_counter() - start) / args.steps
        per_step = {k: v / args.steps for k, v in totals.items()}
        generation = per_step["_sample"]
        length = sum(lengths) / len(lengths)
        prompt_tokens = max(len(ids) for ids in trainer.prompt_ids)
        result = {**label, "status": "ok", "peak_gib": torch.cuda.max_memory_allocated() / GIB if cuda else float("nan"),
                  "seconds_per_step": seconds, "generation_s": generation,
                  "scoring_s": per_step["rollout"] - generation, "update_s": per_step["ppo_update"],
                  "generation_tokens_per_s": config.batch_size * length / generation,
                  "response_length": length, "prompt_tokens": prompt_tokens, "batch_size": config.batch_size,
                  "episodes_per_s_with_warmup": config.batch_size * (args.steps + 1) / (warmup + seconds * args.steps),
                  "decode_steps": config.max_new_tokens, "config": config}
        result["bandwidth_fraction"] = decode_bandwidth_fraction(policy, result)
        return result
    except Exception as err:  # an OOM is a result; anything else is reported and the next set-up runs
        peak = torch.cuda.max_memory_allocated() / GIB if cuda else float("nan")
        status = "OOM" if isinstance(err, torch.OutOfMemoryError) else f"failed ({type(err).__name__})"
        return {**label, "status": status, "peak_gib": peak, "error": str(err).split("\n")[0][:200]}
    finally:
        objects.clear()
        _free()
        if cuda:
            torch.cuda.set_per_process_memory_fraction(1.0)


def decode_bandwidth_fraction(policy, result: dict) -> float:
    """Decoding's fraction of the bandwidth bound: each decode step must read every weight once plus
    the KV cache so far; (bytes / HBM bandwidth) / measured seconds per decode step."""
    if not torch.cuda.is_available():
        return float("nan")
    name = torch.cuda.get_device_name(0)
    bandwidth = next((bw for key, bw in HBM_BANDWIDTH.items() if key in name), None)
    if bandwidth is None:
        return float("nan")
    weights = sum(p.numel() * p.element_size() for p in policy.parameters())
    config = policy.config
    mean_context = result["prompt_tokens"] + result["response_length"] / 2
    kv = 2 * config.num_hidden_layers * result["batch_size"] * mean_context * config.hidden_size * 2  # bf16 K and V
    seconds_per_decode = result["generation_s"] / result["decode_steps"]
    return (weights + kv) / bandwidth / seconds_per_decode


def run_trl(checkpoint: Path, args: argparse.Namespace, work: Path) -> dict:
    """TRL 1.12.0's PPOTrainer (four models) at the same size and settings, in a subprocess."""
    from rlhf.presets import phi2
    from rlhf.tiny_world import load_prompts
    from transformers import AutoTokenizer

    config = phi2().ppo_config()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in load_prompts("train")]
    settings = {
        "policy_dir": str(checkpoint), "reward_dir": str(checkpoint), "prompt_ids": prompt_ids, "threads": 8,
        "seed": 0, "learning_rate": config.learning_rate, "batch_size": config.batch_size,
        "num_mini_batches": config.num_minibatches, "ppo_epochs": config.update_epochs,
        "total_episodes": config.batch_size * (args.steps + 1), "response_length": config.max_new_tokens,
        "temperature": config.temperature, "kl_coef": config.kl_coef, "clip_coef": config.clip_coef,
        "value_clip_coef": config.clip_coef_vf, "vf_coef": config.vf_coef, "gae_lambda": config.gae_lambda,
        "missing_eos_penalty": config.missing_eos_penalty, "max_grad_norm": config.max_grad_norm,
        "dtype": "bfloat16", "output_dir": str(work / "trl"),
    }
    (work / "trl-settings.json").write_text(json.dumps(settings))
    peer = Path(__file__).resolve().parent / "trl_ppo_peer.py"
    done = subprocess.run([sys.executable, str(peer), str(work / "trl-settings.json"), str(work / "trl-result.json")],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        status = "OOM" if "OutOfMemoryError" in done.stderr else "failed"
        return {"status": status, "error": " / ".join(tail)[:300]}
    return {"status": "ok", **json.loads((work / "trl-result.json").read_text())}


def section(results: list[dict], trl: dict | None, args: argparse.Namespace) -> str:
    """The RESULTS.md section: set-up, measured table, TRL, estimates."""
    from rlhf.memory import phi2_config, ppo_memory_estimate

    ok = next(r for r in results if r["status"] == "ok")
    config = ok["config"]
    gpu = torch.cuda.get_device_name(0)
    rows = []
    for r in results:
        cap = f"{r['cap_gib']:g} GiB" if r["cap_gib"] else "none"
        if r["status"] != "ok":
            rows.append(f"| {r['path']} | {r['value_model']} | {cap} | **{r['status']}** | {r['peak_gib']:.2f} | | | | | | |")
            continue
        rows.append(f"| {r['path']} | {r['value_model']} | {cap} | passes | {r['peak_gib']:.2f} | {r['seconds_per_step']:.2f} "
                    f"| {r['generation_s']:.2f} | {r['scoring_s']:.2f} | {r['update_s']:.2f} "
                    f"| {r['generation_tokens_per_s']:.0f} | {r['bandwidth_fraction']:.0%} |")
    estimate = {vm: ppo_memory_estimate(phi2_config(), lora_r=config.lora_r, batch_size=config.batch_size,
                                        minibatch_size=config.batch_size // config.num_minibatches,
                                        prompt_length=ok["prompt_tokens"], response_length=config.max_new_tokens,
                                        value_model=vm)["total"] for vm in ("adapter", "reward")}
    bf16 = {r["value_model"]: r for r in results if r["status"] == "ok" and r["cap_gib"] is None}
    ours_eps = bf16.get("adapter", ok)["episodes_per_s_with_warmup"]
    if trl is None:
        trl_text = "TRL's PPOTrainer was not run (`--no-trl`, or the run stopped before it)."
    elif trl["status"] != "ok":
        trl_text = f"TRL 1.12.0's PPOTrainer: **{trl['status']}** ({trl.get('error', '')})."
    else:
        trl_text = (f"| | ours (value adapter, bf16) | TRL 1.12.0 `PPOTrainer` (four bf16 models, all weights trained) |\n"
                    f"|---|---:|---:|\n"
                    f"| peak GPU memory (GiB) | {bf16.get('adapter', ok)['peak_gib']:.2f} | {trl['peak_gpu_gib']:.2f} |\n"
                    f"| episodes per second ({args.steps + 1} steps, warm-up included) | {ours_eps:.2f} "
                    f"| {trl['episodes_per_second']:.2f} |\n\n"
                    f"Ratio: ours {ours_eps / trl['episodes_per_second']:.2f}x TRL's episodes per second, at "
                    f"{bf16.get('adapter', ok)['peak_gib'] / trl['peak_gpu_gib']:.2f}x its peak memory "
                    f"(TRL {trl['versions']['trl']}, transformers {trl['versions']['transformers']}).")
    bandwidth = next((f"{bw / 1e12:.1f} TB/s" for key, bw in HBM_BANDWIDTH.items() if key in gpu), "unknown")
    return f"""{BEGIN}
## PPO-RLHF at phi-2's size on one GPU (`benchmarks/rlhf_gpu_memory.py`, measured)

{gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}. A randomly initialised model of phi-2's full
configuration (2.78 B parameters), loaded through `rlhf.models.load_model` / `load_reward_model` with the
`phi-2` preset's PPO settings: batch {config.batch_size} prompts (up to {ok['prompt_tokens']} tokens),
{config.max_new_tokens}-token responses (a random policy never stops early: the worst case), {config.num_minibatches}
minibatches of {config.batch_size // config.num_minibatches} x {config.update_epochs} epochs, LoRA r={config.lora_r} on the policy
(and on the value adapter), a second phi-2-sized reward model. Seconds are the mean of {args.steps} steps after a warm-up step;
"generation" is sampling, "scoring" the reward model, reference and value passes of the rollout, "update" the PPO
epochs. Bandwidth: bytes of weights and KV cache one decode step must read, over {bandwidth} (the data sheet's HBM
bandwidth), divided by the measured time per decode step. The 15 GiB rows cap the process with
`torch.cuda.set_per_process_memory_fraction` at {args.cap_gib:g} GiB of the device: what a 16 GB T4 leaves usable.

| base | critic | cap | result | peak GiB | s / step | generation s | scoring s | update s | generated tokens / s | decode bandwidth |
|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Estimated total by `rlhf.memory.ppo_memory_estimate` for the bf16 rows: {estimate['adapter']:.2f} GiB (value adapter),
{estimate['reward']:.2f} GiB (critic on the reward model).

{trl_text}
{END}"""


def write_section(text: str) -> None:
    """Replace this script's section of RESULTS.md (or append it), leaving the rest alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(new)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.steps = 1
    cuda = torch.cuda.is_available()
    if not args.smoke and not cuda:
        print("rlhf_gpu_memory.py measures GPU memory and needs a CUDA GPU; none is available here "
              "(torch.cuda.is_available() is False). Run it on a GPU machine, or pass --smoke to check "
              "the script on tiny shapes without recording anything.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        checkpoint = make_checkpoint(work / "phi2-random", args.smoke)
        if args.trl_only:
            print(json.dumps(run_trl(checkpoint, args, work)))
            return 0
        plan = [("adapter", None, None), ("reward", None, None)]  # 1. bf16
        if cuda:  # 2. the 15 GiB question
            plan += [(vm, q, args.cap_gib) for q in ("4bit", None) for vm in ("adapter", "reward")]
        else:  # the smoke run: both critics, both paths (bitsandbytes runs 4-bit on a CPU too)
            plan = [("adapter", None, None), ("reward", "4bit", None)]
        results = []
        for value_model, quantization, cap in plan:
            started = time.perf_counter()
            result = measure(checkpoint, args, value_model=value_model, quantization=quantization, cap_gib=cap)
            results.append(result)
            print(f"{result['path']:>40} | {value_model:>7} | cap {cap} | {result['status']} | "
                  f"peak {result['peak_gib']:.2f} GiB | "
                  + (f"{result['seconds_per_step']:.2f} s/step" if result["status"] == "ok" else result.get("error", ""))
                  + f" | {time.perf_counter() - started:.0f} s", flush=True)
            if not args.smoke and any(r["status"] == "ok" for r in results):
                write_section(section(results, None, args))  # so far: a run cut short still leaves its rows
        trl = None
        if not args.no_trl and not args.smoke:
            started = time.perf_counter()
            trl = run_trl(checkpoint, args, work)
            print(f"TRL: {trl.get('status')} {trl.get('episodes_per_second', '')} ep/s, "
                  f"peak {trl.get('peak_gpu_gib', '')} GiB | {time.perf_counter() - started:.0f} s", flush=True)
        if args.smoke:
            assert all(r["status"] == "ok" for r in results), results
            print("smoke run: every set-up ran; nothing written")
            return 0
        text = section(results, trl, args)
        print(text)
        write_section(text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
