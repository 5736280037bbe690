"""The course's PPO-RLHF trainer vs TRL's last PPOTrainer (trl 1.12.0), on the tiny world.

One command, from the repository root, in the course's environment::

    python benchmarks/rlhf_vs_trl_ppo.py

What it does:

1. Builds the peer's own virtual environment ``benchmarks/.venv-trl112`` if it is missing:
   the course's torch version, then ``benchmarks/requirements-trl-ppo.txt`` (``trl==1.12.0``,
   the last release with ``PPOTrainer``, now ``trl.experimental.ppo``) with transformers pinned
   to the course's version. TRL 1.12 is never installed into the course's environment.
2. Builds (or loads from the cache) the tiny world's SFT policy and reward model.
3. Trains PPO from the SFT policy twice, each in a fresh subprocess on the same machine with
   the same settings — the same tiny model, prompts, reward model, batch size, response length,
   minibatches and PPO epochs, the same number of episodes and torch threads:

   * **ours**: :class:`rlhf.ppo.PPOTrainer` (policy = SFT + LoRA, the reference = the same
     weights with the adapter off; one copy of the base weights), with the critic chosen by
     ``--value-model`` (default ``reward``: a head on the frozen reward model's hidden states,
     which scoring computes anyway; ``adapter``: ``PPOConfig``'s default, a value adapter on
     the shared base);
   * **TRL**: ``trl.experimental.ppo.PPOTrainer`` run by ``benchmarks/trl_ppo_peer.py`` in its
     own environment, set up as TRL documents it: separate policy, reference, reward and value
     models (the value model initialised from the reward model), full fine-tuning.

4. Measures episodes (sampled responses) per second of training, the peak resident memory of
   each process, and the gold reward (chapter 10's gold rater) of each trained policy on the
   held-out prompts after the same number of episodes, with the same evaluation code.
5. Prints the speed ratio and writes its section of ``benchmarks/RESULTS.md`` (between the
   ``rlhf-vs-trl-ppo`` markers; other benchmarks own the rest of the file).

Steps 3–4 run for each of ``--seeds`` seeds (default 6): a single seed's gold reward varies by
about ±0.02, as much as the two trainers differ, so the gold comparison uses the mean over seeds
(± its standard error across seeds) and speeds are averaged over the runs. Each policy answers
every held-out prompt ``--eval-samples`` times (default 4), which halves the sampling noise of
its gold reward. The whole run takes
about 10 minutes on 2 CPU cores (``--episodes``, ``--seeds`` and ``--eval-samples`` shorten it). Each training
process runs one torch thread by default (``--threads``), so the two never compete for the cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (this script's own folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PEER_VENV = BENCH / ".venv-trl112"
PEER_REQUIREMENTS = BENCH / "requirements-trl-ppo.txt"
PEER_RUNNER = BENCH / "trl_ppo_peer.py"
RESULTS = BENCH / "RESULTS.md"
BEGIN, END = "<!-- rlhf_vs_trl_ppo:start -->", "<!-- rlhf_vs_trl_ppo:end -->"
TRL_PEER_VERSION = "1.12.0"


# --------------------------------------------------------------------------- settings


def default_settings(args: argparse.Namespace) -> dict:
    """The settings both trainers share (chapter 11's defaults for the tiny world)."""
    return {
        "seed": args.seed,
        "threads": args.threads,
        "batch_size": args.batch_size,  # responses per PPO step
        "num_mini_batches": args.minibatches,
        "ppo_epochs": args.ppo_epochs,
        "response_length": args.response_length,
        "total_episodes": args.episodes,
        "temperature": 1.0,
        "kl_coef": 0.05,
        "kl_estimator": "k1",
        "clip_coef": 0.2,
        "value_clip_coef": 0.2,
        "vf_coef": 0.1,
        "value_model": args.value_model,  # ours only (TRL's critic is a full model initialised from the reward model)
        "gae_lambda": 0.95,
        "missing_eos_penalty": 1.0,
        "max_grad_norm": 1.0,
        # Each side's own best learning rate on this task (mean gold over seeds 0-2 after 640
        # episodes, 4 samples per held-out prompt). TRL (every weight): 3e-4 (0.847), the best of
        # 1e-4 (0.764), 3e-4 and 1e-3 (0.797). Ours (LoRA adapters, a 10-step linear schedule):
        # 2e-3, the best of 3e-4 (PPOConfig's default), 1e-3 and 2e-3 (seed 0, with the value adapter).
        "learning_rate": args.our_lr,
        "trl_learning_rate": args.trl_lr,
    }


# --------------------------------------------------------------------------- peer environment


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def peer_python() -> Path:
    return PEER_VENV / "bin" / "python"


def peer_versions() -> dict | None:
    """Versions in the peer environment, or None when it is missing or broken."""
    if not peer_python().exists():
        return None
    code = ("import json, torch, transformers, trl; print(json.dumps({'torch': torch.__version__, "
            "'transformers': transformers.__version__, 'trl': trl.__version__}))")
    out = subprocess.run([str(peer_python()), "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None


def ensure_peer_env() -> dict:
    """Create ``benchmarks/.venv-trl112`` with trl 1.12.0 (and the course's torch and
    transformers versions) unless it is already there; returns its versions."""
    import torch
    import transformers

    torch_version = torch.__version__.split("+")[0]
    want = {"trl": TRL_PEER_VERSION, "transformers": transformers.__version__}
    found = peer_versions()
    if found and all(found[k] == v for k, v in want.items()) and found["torch"].split("+")[0] == torch_version:
        return found
    print(f"building the peer environment {PEER_VENV.relative_to(ROOT)} (trl=={TRL_PEER_VERSION}) ...", flush=True)
    if PEER_VENV.exists():
        shutil.rmtree(PEER_VENV)
    _run([sys.executable, "-m", "venv", PEER_VENV])
    pip = [peer_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch first: the course's version (on a CPU-only machine pip's constraints or the local
    # wheel directory decide the build, exactly as for the course's own environment).
    _run(pip + [f"torch=={torch_version}"])
    _run(pip + ["-r", PEER_REQUIREMENTS, f"transformers=={transformers.__version__}"])
    found = peer_versions()
    if not found or found["trl"] != TRL_PEER_VERSION:
        raise RuntimeError(f"the peer environment has no working trl=={TRL_PEER_VERSION}: {found}")
    return found


# --------------------------------------------------------------------------- our side (worker)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(settings_path: str, result_path: str) -> int:
    """Worker: train the course's PPO with ``settings`` and save the merged policy."""
    settings = json.loads(Path(settings_path).read_text())
    import torch

    torch.set_num_threads(int(settings["threads"]))
    import transformers

    from rlhf.models import load_model, load_reward_model
    from rlhf.ppo import PPOConfig, PPOTrainer
    from rlhf.policy_value import POLICY

    transformers.logging.set_verbosity_error()
    policy, tokenizer = load_model(settings["policy_dir"], device="cpu", dtype=torch.float32)
    reward, reward_tokenizer = load_reward_model(settings["reward_dir"], device="cpu", dtype=torch.float32)
    steps = settings["total_episodes"] // settings["batch_size"]
    config = PPOConfig(
        batch_size=settings["batch_size"],
        num_minibatches=settings["num_mini_batches"],
        update_epochs=settings["ppo_epochs"],
        total_steps=steps,
        learning_rate=settings["learning_rate"],
        max_grad_norm=settings["max_grad_norm"],
        clip_coef=settings["clip_coef"],
        clip_coef_vf=settings["value_clip_coef"],
        vf_coef=settings["vf_coef"],
        value_model=settings["value_model"],
        gamma=1.0,
        gae_lambda=settings["gae_lambda"],
        temperature=settings["temperature"],
        max_new_tokens=settings["response_length"],
        kl_coef=settings["kl_coef"],
        kl_estimator=settings["kl_estimator"],
        missing_eos_penalty=settings["missing_eos_penalty"],
    )
    trainer = PPOTrainer(policy, tokenizer, reward, reward_tokenizer, settings["prompts"], config,
                         seed=settings["seed"])
    rss_before = peak_rss_mb()
    cpu_start, start = cpu_seconds(), time.perf_counter()
    history = trainer.train(steps, progress=False)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    episodes = steps * settings["batch_size"]
    out_dir = Path(settings["output_dir"]) / "policy"
    model = trainer.policy_value.model
    model.set_adapter(POLICY)
    merged = model.merge_and_unload(adapter_names=[POLICY])
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    result = {
        "trainer": "rlhf.ppo.PPOTrainer",
        "episodes": episodes,
        "train_seconds": seconds,
        "episodes_per_second": episodes / seconds,
        "train_cpu_seconds": cpu,
        "episodes_per_cpu_second": episodes / cpu,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_before_training": rss_before,
        "policy_dir": str(out_dir),
        "proxy_score_first": float(history["reward/proxy_raw"][0]),
        "proxy_score_last": float(history["reward/proxy_raw"][-1]),
        "kl_last": float(history["kl/k1"][-1]),
        "threads": torch.get_num_threads(),
    }
    Path(result_path).write_text(json.dumps(result, indent=2))
    return 0


# --------------------------------------------------------------------------- orchestration


def _worker_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TRL_EXPERIMENTAL_SILENCE="1", PYTHONWARNINGS="ignore")
    return env


def train_side(side: str, settings: dict, work: Path) -> dict:
    """Run one side in a fresh process; returns its result JSON."""
    side_dir = work / side
    side_dir.mkdir(parents=True, exist_ok=True)
    s = dict(settings, output_dir=str(side_dir))
    if side == "trl":
        s["learning_rate"] = settings["trl_learning_rate"]
    settings_path, result_path = side_dir / "settings.json", side_dir / "result.json"
    settings_path.write_text(json.dumps(s))
    if side == "ours":
        cmd = [sys.executable, __file__, "--worker", "ours", settings_path, result_path]
    else:
        cmd = [peer_python(), PEER_RUNNER, settings_path, result_path]
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.run([str(c) for c in cmd], env=_worker_env(settings["threads"]), cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f"the {side} run failed (exit {proc.returncode})")
    result = json.loads(result_path.read_text())
    result["process_seconds"] = time.perf_counter() - start
    result["load_average"] = [load_before, os.getloadavg()[0]]  # 1-minute load before and after
    return result


def evaluate(policy_dir: str, prompts: list[str], settings: dict, reward_dir: str, reference_dir: str) -> dict:
    """Gold reward, KL to the SFT policy, proxy reward and length on the held-out prompts
    (``settings["eval_samples"]`` samples of each, on independent random numbers)."""
    import torch

    from rlhf.evaluation import evaluate_policy
    from rlhf.models import load_model, load_reward_model
    from rlhf.scoring import RewardScorer

    policy, tokenizer = load_model(policy_dir, device="cpu", dtype=torch.float32)
    reference, _ = load_model(reference_dir, device="cpu", dtype=torch.float32)
    reward, reward_tokenizer = load_reward_model(reward_dir, device="cpu", dtype=torch.float32)
    result = evaluate_policy(policy, tokenizer, list(prompts) * settings["eval_samples"], reference=reference,
                             reward_scorer=RewardScorer(reward, reward_tokenizer, tokenizer),
                             max_new_tokens=settings["response_length"], temperature=settings["temperature"],
                             seed=settings["seed"] + 1000)
    return result.summary()


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def write_section(text: str, path: Path = RESULTS) -> None:
    """Replace this benchmark's section of ``RESULTS.md`` (or append it), leaving the rest alone."""
    block = f"{BEGIN}\n{text.rstrip()}\n{END}\n"
    if path.exists():
        old = path.read_text()
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
        new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block
    else:
        new = "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; do not edit by hand.\n\n" + block
    path.write_text(new)


def over_seeds(runs: list[dict], evals: list[dict]) -> tuple[dict, dict]:
    """One side's training results and evaluations, one per seed, as means: rates averaged, the peak RSS
    the largest, gold ± the standard error of its mean across seeds (the sampling error with one seed)."""
    import numpy as np

    result = {key: float(np.mean([r[key] for r in runs])) for key in ("episodes_per_second", "episodes_per_cpu_second")}
    result.update(peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                  load_average=[x for r in runs for x in r["load_average"]])
    summary = {key: float(np.mean([e[key] for e in evals])) for key in ("gold", "kl", "proxy", "length")}
    golds = [e["gold"] for e in evals]
    summary["gold_sem"] = float(np.std(golds, ddof=1) / np.sqrt(len(golds))) if len(golds) > 1 else evals[0]["gold_sem"]
    summary["golds"] = golds
    return result, summary


def report(settings: dict, results: dict, evals: dict, versions: dict, wall: float) -> tuple[str, float]:
    """The RESULTS.md section, and the speed ratio it states."""
    from rlhf.ppo import PPOConfig

    ours, trl = results["ours"], results["trl"]
    wall_ratio = ours["episodes_per_second"] / trl["episodes_per_second"]
    cpu_ratio = ours["episodes_per_cpu_second"] / trl["episodes_per_cpu_second"]
    m = machine()
    # On a busy machine the processes get a varying share of the cores, so wall-clock speed
    # measures the neighbours; CPU time (user + system, all threads) does not.
    busiest = max(max(r["load_average"]) for r in (ours, trl))
    quiet = busiest <= (m["cores"] or 1) + 0.5
    ratio = wall_ratio if quiet else cpu_ratio
    basis = "wall-clock" if quiet else "CPU-time"
    gold_ok = evals["ours"]["gold"] >= evals["trl"]["gold"] - evals["trl"]["gold_sem"]
    lines = [
        "## RLHF: the course's PPO trainer vs TRL's PPOTrainer (trl 1.12.0)",
        "",
        f"`python benchmarks/rlhf_vs_trl_ppo.py` on {dt.date.today().isoformat()}: {m['cpu']}, "
        f"{m['cores']} cores, {settings['threads']} torch thread(s) per run, {m['system']}, Python {m['python']}. "
        f"1-minute load average during the runs: up to {busiest:.1f}"
        + (" (a quiet machine)." if quiet else f" (a busy machine: more runnable processes than its {m['cores']} cores, "
           "so the wall-clock figures measure the neighbours too; the ratio uses CPU time)."),
        "",
        f"Same tiny Phi SFT policy, reward model, {len(settings['prompts'])} training prompts, "
        f"{settings['batch_size']} responses per PPO step, responses of at most {settings['response_length']} tokens, "
        f"{settings['num_mini_batches']} minibatches x {settings['ppo_epochs']} PPO epochs, "
        f"{settings['total_episodes']} episodes, temperature {settings['temperature']}, KL coefficient "
        f"{settings['kl_coef']}, seeds {', '.join(map(str, settings['seeds']))} (each trainer once per seed). "
        f"Gold reward: chapter 10's gold rater on {evals['n_prompts']} held-out prompts, "
        f"{settings['eval_samples']} sample(s) each, averaged "
        "over the seeds (± the standard error of that mean across seeds, which includes the sampling error); "
        "speeds and the other columns are means over the seeds; KL to the SFT policy in nats per response; every "
        "trained policy evaluated by the same code (`rlhf.evaluation.evaluate_policy`).",
        "",
        "| trainer | episodes/s (wall) | episodes per CPU-second | peak RSS (MiB) | gold reward | KL to SFT "
        "| proxy (RM) | response length |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| SFT policy (start) | – | – | – | {evals['sft']['gold']:.3f} ± {evals['sft']['gold_sem']:.3f} | "
        f"{evals['sft']['kl']:.2f} | {evals['sft']['proxy']:.2f} | {evals['sft']['length']:.1f} |",
    ]
    critic = {"reward": "critic on the reward model", "adapter": "value adapter"}[settings["value_model"]]
    for key, name in (("ours", f"course `rlhf.ppo.PPOTrainer` (LoRA, one shared base, {critic})"),
                      ("trl", f"TRL {versions['trl']['trl']} `trl.experimental.ppo.PPOTrainer` (4 full models)")):
        r, e = results[key], evals[key]
        lines.append(f"| {name} | {r['episodes_per_second']:.2f} | {r['episodes_per_cpu_second']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {e['gold']:.3f} ± {e['gold_sem']:.3f} | {e['kl']:.2f} | "
                     f"{e['proxy']:.2f} | {e['length']:.1f} |")
    lines += [
        "",
        "Gold reward seed by seed: " + "; ".join(
            f"{side} " + ", ".join(f"{g:.3f}" for g in evals[side]["golds"]) for side in ("ours", "trl")) + ".",
        "",
        f"**Speed ratio (ours / TRL), {basis}: {ratio:.2f}x episodes per second** (wall-clock {wall_ratio:.2f}x, "
        f"CPU time {cpu_ratio:.2f}x). Mean gold reward after the same {settings['total_episodes']} episodes: "
        f"{evals['ours']['gold']:.3f} vs {evals['trl']['gold']:.3f} — "
        f"{'equal or better' if gold_ok else 'LOWER'} (within one standard error counts as equal). "
        f"Goal (at least 2x at equal or better gold reward): {'met' if ratio >= 2 and gold_ok else 'NOT met'}.",
        "",
        f"Learning rates: ours {settings['learning_rate']:g} (LoRA adapters and value head"
        + (f"; NOT `PPOConfig`'s default of {PPOConfig.learning_rate:g}: on this 10-step run "
           f"{settings['learning_rate']:g} was the best of a short sweep over 3e-4, 1e-3 and 2e-3 with the value adapter, "
           "not re-swept for the reward-model critic"
           if settings["learning_rate"] != PPOConfig.learning_rate else ", `PPOConfig`'s default")
        + f"), TRL {settings['trl_learning_rate']:g} (every weight; the value model, initialised from the reward "
        "model, is trained too"
        + ("; the best of 1e-4, 3e-4 and 1e-3 by mean gold over seeds 0–2: 0.764, 0.847, 0.797"
           if settings["trl_learning_rate"] == 3e-4 else "") + "). "
        + (f"Critic: ours `PPOConfig(value_model='reward')`, NOT `PPOConfig`'s default "
           f"`{PPOConfig.value_model!r}`: the frozen reward model's normalised score of each prefix plus an MLP "
           "correction trained on its hidden states (which scoring computes anyway), so the update runs the base "
           "once per minibatch instead of twice. "
           if settings["value_model"] != PPOConfig.value_model
           else f"Critic: ours `PPOConfig`'s default, `value_model={PPOConfig.value_model!r}` (a value adapter on "
                "the shared base). ")
        + "Speeds count training only (model loading and "
        "evaluation excluded; ours includes its one-off reward-normalisation sampling); peak RSS is the whole "
        "training process.",
        "",
        f"Versions — course environment: torch {versions['ours']['torch']}, transformers "
        f"{versions['ours']['transformers']}, trl {versions['ours']['trl']}, peft {versions['ours']['peft']}; "
        f"peer environment (`benchmarks/.venv-trl112`): torch {versions['trl']['torch']}, transformers "
        f"{versions['trl']['transformers']}, trl {versions['trl']['trl']}. TRL 1.12.0's PPOTrainer runs with the "
        "course's transformers version, so the peer environment pins that same version. Whole benchmark: "
        f"{wall / 60:.1f} min.",
    ]
    return "\n".join(lines), ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--episodes", type=int, default=640, help="episodes (responses) each trainer samples")
    parser.add_argument("--batch-size", type=int, default=64, help="responses per PPO step")
    parser.add_argument("--minibatches", type=int, default=4, help="minibatches per PPO epoch")
    parser.add_argument("--ppo-epochs", type=int, default=4, help="PPO epochs per step")
    parser.add_argument("--response-length", type=int, default=32, help="longest response in tokens")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each training process")
    parser.add_argument("--our-lr", type=float, default=2e-3, help="learning rate of the course's trainer (LoRA)")
    parser.add_argument("--value-model", choices=["reward", "adapter"], default="reward",
                        help="the course trainer's critic, PPOConfig.value_model (its default is 'adapter')")
    parser.add_argument("--trl-lr", type=float, default=3e-4, help="learning rate of TRL's trainer (full fine-tuning)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=6, help="how many seeds (--seed, --seed + 1, ...)")
    parser.add_argument("--eval-prompts", type=int, default=256, help="held-out prompts for the gold reward")
    parser.add_argument("--eval-samples", type=int, default=4, help="samples per held-out prompt")
    parser.add_argument("--no-write", action="store_true", help="print the results only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.worker == "ours":
        return run_ours(*args.paths)
    if args.episodes % args.batch_size:
        parser.error("--episodes must be a multiple of --batch-size")
    if args.seeds < 1 or args.eval_samples < 1:
        parser.error("--seeds and --eval-samples must be at least 1")

    wall = time.perf_counter()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    sys.path.insert(0, str(ROOT))
    import peft
    import torch
    import transformers
    import trl

    versions = {"trl": ensure_peer_env(),
                "ours": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "trl": trl.__version__, "peft": peft.__version__}}
    from rlhf.stages import reward_model_dir, sft_model_dir
    from rlhf.tiny_world import load_prompts

    sft_dir, reward_dir = str(sft_model_dir()), str(reward_model_dir())
    settings = default_settings(args)
    train_prompts = load_prompts("train")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    settings.update(policy_dir=sft_dir, reward_dir=reward_dir, prompts=train_prompts,
                    prompt_ids=tokenizer(train_prompts, add_special_tokens=False)["input_ids"])
    eval_prompts = load_prompts("eval")[: args.eval_prompts]
    settings["eval_samples"] = args.eval_samples

    seeds = list(range(args.seed, args.seed + args.seeds))
    settings["seeds"] = seeds
    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    scores: dict[str, list[dict]] = {"ours": [], "trl": []}
    work = Path(tempfile.mkdtemp(prefix="rlhf-vs-trl-"))
    try:
        # every training process first, every evaluation after: a child process inherits its parent's peak
        # resident memory (Linux keeps ru_maxrss across fork and exec), so the parent stays small until then
        for seed in seeds:
            settings["seed"] = seed
            for side in ("ours", "trl"):
                print(f"training: {side}, seed {seed} ...", flush=True)
                r = train_side(side, settings, work / f"seed{seed}")
                runs[side].append(r)
                print(f"  {r['episodes']} episodes in {r['train_seconds']:.1f} s = {r['episodes_per_second']:.2f} "
                      f"episodes/s ({r['episodes_per_cpu_second']:.2f} per CPU-second), peak RSS "
                      f"{r['peak_rss_mb']:.0f} MiB", flush=True)
        torch.set_num_threads(args.threads)
        settings["seed"] = seeds[0]
        evals = {"n_prompts": len(eval_prompts),
                 "sft": evaluate(sft_dir, eval_prompts, settings, reward_dir, sft_dir)}
        for index, seed in enumerate(seeds):
            settings["seed"] = seed
            for side in ("ours", "trl"):
                scores[side].append(evaluate(runs[side][index]["policy_dir"], eval_prompts, settings, reward_dir,
                                             sft_dir))
                print(f"  {side}, seed {seed}: gold {scores[side][-1]['gold']:.3f} ± "
                      f"{scores[side][-1]['gold_sem']:.3f}, KL {scores[side][-1]['kl']:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {}
    for side in ("ours", "trl"):
        results[side], evals[side] = over_seeds(runs[side], scores[side])
    text, ratio = report(settings, results, evals, versions, time.perf_counter() - wall)
    print()
    print(text)
    print(f"\nRATIO (ours / TRL episodes per second): {ratio:.2f}")
    if not args.no_write:
        write_section(text)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
