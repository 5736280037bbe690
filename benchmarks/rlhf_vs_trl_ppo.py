"""The course's PPO-RLHF trainer vs TRL's last PPOTrainer (trl 1.12.0): gold reward vs KL, on the tiny world.

From the repository root, in the course's environment::

    python benchmarks/rlhf_vs_trl_ppo.py                  # the full comparison (~35 min on 2 cores); writes RESULTS.md
    python benchmarks/rlhf_vs_trl_ppo.py --smoke          # seconds: every piece once on tiny budgets; never writes
    python benchmarks/rlhf_vs_trl_ppo.py --smoke --no-trl # the course's side only (no peer environment: what CI runs)

RLHF methods are compared on the frontier of gold reward against KL to the SFT policy (Gao et al., "Scaling
Laws for Reward Model Overoptimization", 2022): a trainer that moves further from the SFT policy gets more
reward, so gold at unequal KL says little. Each trainer therefore saves its policy every
``--checkpoint-every`` PPO steps, and every checkpoint is rated by the same code. What the script does:

1. Builds the peer's own virtual environment ``benchmarks/.venv-trl112`` if it is missing (not with
   ``--no-trl``): the course's torch version, then ``benchmarks/requirements-trl-ppo.txt`` (``trl==1.12.0``,
   the last release with ``PPOTrainer``, now ``trl.experimental.ppo``) with transformers pinned to the
   course's version. TRL 1.12 is never installed into the course's environment.
2. Builds (or loads from the cache) the tiny world's SFT policy and reward model.
3. For each of ``--seeds`` seeds, trains PPO from the SFT policy four times, each run in a fresh subprocess
   with the same shared settings (the same tiny model, prompts, reward model, batch size, response length,
   minibatches, PPO epochs, KL coefficient, clipping, episodes and torch threads):

   * **trl**: ``trl.experimental.ppo.PPOTrainer`` run by ``benchmarks/trl_ppo_peer.py`` in its own
     environment, set up as TRL documents it: separate policy, reference, reward and value models (the value
     model initialised from the reward model), full fine-tuning, learning rate ``--trl-lr`` (3e-4, its best
     of 1e-4, 3e-4 and 1e-3); a ``TrainerCallback`` saves the policy at each checkpoint;
   * **ours-default**: :class:`rlhf.ppo.PPOTrainer` with ``PPOConfig()``'s own defaults for everything the
     two trainers do not share (a value adapter on the shared base, learning rate 3e-4); policy = SFT + LoRA,
     the reference = the same weights with the adapter off. It moves away from the SFT policy more slowly than
     the others (KL 0.8 after 640 episodes where TRL is at 2), so it trains for ``--default-episodes`` (1536;
     its learning-rate schedule spans the longer run), where its KL levels off at 1.5-1.8 nats;
   * **ours-reward**: the same trainer with ``value_model="reward"`` (a critic on the frozen reward model's
     hidden states, which scoring computes anyway) and learning rate ``--reward-lr`` (2e-3): a labelled
     alternative, not the defaults;
   * **ours-default-lowkl**: ``PPOConfig()``'s defaults with the KL coefficient ``--low-kl-coef`` (0.02) instead
     of the shared 0.05, for as many episodes as ours-default: the defaults' curve levels off below TRL's KLs,
     and a frontier is traced by the KL coefficient. The report joins the two into **ours-frontier**: at each
     KL, on each seed, ours-default's curve where it reaches that KL, else this run's — chosen by the KL, never
     by which gold is higher.

   Ours trains in chunks of ``--checkpoint-every`` steps (``PPOTrainer.train(n)``; the learning-rate schedule
   spans the whole run, ``PPOConfig.total_steps``, whatever the chunks) and saves the merged policy (SFT
   weights + the policy adapter) after each chunk. Saving is timed apart on both sides and left out of the
   training seconds (wall-clock and CPU).
4. Rates the SFT policy (the point at KL 0 of every curve) and every checkpoint with :func:`evaluate`: gold
   reward (chapter 10's gold rater), KL to the SFT policy, proxy reward and response length on
   ``--eval-prompts`` held-out prompts, ``--eval-samples`` samples each, on the random numbers of the seed.
5. Reports, in its section of ``benchmarks/RESULTS.md`` (between the ``rlhf_vs_trl_ppo`` markers; other
   benchmarks own the rest of the file): episodes per second (wall-clock and per CPU-second) of each run
   type, gold and KL at every checkpoint (means over seeds ± standard errors), and at each of TRL's
   checkpoint KLs (mean over seeds) the gold of each of our configurations, interpolated linearly on each
   seed's own (KL, gold) curve and then averaged over the seeds — never extrapolated: a KL that a seed's curve
   does not reach is reported as not reached; and the same comparison on a 0.25-nat grid of the KLs that every
   curve reaches. The plot ``benchmarks/rlhf_vs_trl_frontier.png`` shows the three frontiers.

Every training process runs ``--threads`` torch threads (default 1) and the processes run one at a time,
all training first and all evaluation after (a child process inherits its parent's peak resident memory).
On a busy machine (1-minute load above the core count) the speed ratios use CPU time rather than wall-clock.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
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
FRONTIER_PNG = BENCH / "rlhf_vs_trl_frontier.png"
BEGIN, END = "<!-- rlhf_vs_trl_ppo:start -->", "<!-- rlhf_vs_trl_ppo:end -->"
TRL_PEER_VERSION = "1.12.0"
OUR_RUNS = ("ours-default", "ours-reward")
"""Our two configurations: ``PPOConfig()``'s defaults, and the reward-model critic at a higher learning rate."""
LOW_KL_RUN = "ours-default-lowkl"
"""``PPOConfig()``'s defaults with a lower KL coefficient (``--low-kl-coef``): the same trainer and settings
further along the KL axis, where the defaults' curve levels off."""
FRONTIER = "ours-frontier"
"""The defaults' frontier over the KL coefficient, per seed: at a KL that ``ours-default``'s curve reaches,
its gold there; beyond it, :data:`LOW_KL_RUN`'s. Which curve serves is decided by the KL alone, never by
which gold is higher (the better of two noisy curves would be biased upwards)."""
RUN_NAMES = {
    "trl": "TRL 1.12.0 `trl.experimental.ppo.PPOTrainer` (4 full models)",
    "ours-default": "course `rlhf.ppo.PPOTrainer`, `PPOConfig()` defaults (value adapter)",
    "ours-reward": "course `rlhf.ppo.PPOTrainer`, critic on the reward model",
    LOW_KL_RUN: "course `rlhf.ppo.PPOTrainer`, `PPOConfig()` defaults but a lower KL coefficient",
}
SMOKE = {"episodes": 16, "default_episodes": 0, "batch_size": 8, "minibatches": 2, "ppo_epochs": 1,
         "response_length": 8,
         "checkpoint_every": 1, "seeds": 1, "eval_prompts": 8, "eval_samples": 1}
"""``--smoke``: 2 PPO steps of 8 responses (2 checkpoints), one seed, 8 held-out prompts."""


# --------------------------------------------------------------------------- settings


def default_settings(args: argparse.Namespace) -> dict:
    """The settings every run shares (chapter 11's defaults for the tiny world, all equal to ``PPOConfig()``'s)."""
    return {
        "seed": args.seed,
        "threads": args.threads,
        "batch_size": args.batch_size,  # responses per PPO step
        "num_mini_batches": args.minibatches,
        "ppo_epochs": args.ppo_epochs,
        "response_length": args.response_length,
        "total_episodes": args.episodes,
        "checkpoint_every": args.checkpoint_every,  # PPO steps between saved policies
        "temperature": 1.0,
        "kl_coef": 0.05,
        "kl_estimator": "k1",
        "clip_coef": 0.2,
        "value_clip_coef": 0.2,
        "vf_coef": 0.1,
        "gae_lambda": 0.95,
        "missing_eos_penalty": 1.0,
        "max_grad_norm": 1.0,
    }


def run_settings(run: str, settings: dict, args: argparse.Namespace) -> dict:
    """One run type's settings: the shared ones plus what is its own.

    TRL: its learning rate (every weight; mean gold over seeds 0-2 after 640 episodes, 4 samples per held-out
    prompt: 1e-4 0.764, 3e-4 0.847, 1e-3 0.797). Ours: ``overrides`` are the only ``PPOConfig`` fields set
    beyond the shared settings — none for ``ours-default``, so its learning rate and critic are the defaults.
    """
    if run == "trl":
        return dict(settings, learning_rate=args.trl_lr)
    if run in ("ours-default", LOW_KL_RUN):
        return dict(settings, overrides={}, total_episodes=args.default_episodes or settings["total_episodes"],
                    **({"kl_coef": args.low_kl_coef} if run == LOW_KL_RUN else {}))
    return dict(settings, overrides={"value_model": "reward", "learning_rate": args.reward_lr})


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


def save_merged_policy(trainer, tokenizer, out_dir: Path) -> None:
    """Save the trainer's current policy (the SFT weights with the policy adapter merged in) as a plain
    causal LM. The merge happens on a copy: the trainer's own model keeps its adapters and trains on."""
    from rlhf.policy_value import POLICY

    model = copy.deepcopy(trainer.policy_value.model)
    model.set_adapter(POLICY)
    model.merge_and_unload(adapter_names=[POLICY]).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def run_ours(settings_path: str, result_path: str) -> int:
    """Worker: train the course's PPO with ``settings`` in chunks of ``checkpoint_every`` steps, saving the
    merged policy after each chunk (saving is not counted as training time)."""
    settings = json.loads(Path(settings_path).read_text())
    import torch

    torch.set_num_threads(int(settings["threads"]))
    import transformers

    from rlhf.models import load_model, load_reward_model
    from rlhf.ppo import PPOConfig, PPOTrainer

    transformers.logging.set_verbosity_error()
    policy, tokenizer = load_model(settings["policy_dir"], device="cpu", dtype=torch.float32)
    reward, reward_tokenizer = load_reward_model(settings["reward_dir"], device="cpu", dtype=torch.float32)
    steps = settings["total_episodes"] // settings["batch_size"]
    config = PPOConfig(
        batch_size=settings["batch_size"],
        num_minibatches=settings["num_mini_batches"],
        update_epochs=settings["ppo_epochs"],
        total_steps=steps,  # the learning-rate schedule spans the whole run, however it is chunked
        max_grad_norm=settings["max_grad_norm"],
        clip_coef=settings["clip_coef"],
        clip_coef_vf=settings["value_clip_coef"],
        vf_coef=settings["vf_coef"],
        gamma=1.0,
        gae_lambda=settings["gae_lambda"],
        temperature=settings["temperature"],
        max_new_tokens=settings["response_length"],
        kl_coef=settings["kl_coef"],
        kl_estimator=settings["kl_estimator"],
        missing_eos_penalty=settings["missing_eos_penalty"],
        **settings["overrides"],
    )
    trainer = PPOTrainer(policy, tokenizer, reward, reward_tokenizer, settings["prompts"], config,
                         seed=settings["seed"])
    rss_before = peak_rss_mb()
    seconds = cpu = save_seconds = 0.0
    checkpoints = []
    while trainer.step_count < steps:
        cpu_start, start = cpu_seconds(), time.perf_counter()
        history = trainer.train(min(settings["checkpoint_every"], steps - trainer.step_count), progress=False)
        seconds, cpu = seconds + time.perf_counter() - start, cpu + cpu_seconds() - cpu_start
        start = time.perf_counter()
        out_dir = Path(settings["output_dir"]) / f"step-{trainer.step_count:03d}"
        save_merged_policy(trainer, tokenizer, out_dir)
        save_seconds += time.perf_counter() - start
        checkpoints.append({"step": trainer.step_count, "episodes": trainer.step_count * settings["batch_size"],
                            "policy_dir": str(out_dir), "train_kl": float(history["kl/k1"][-1]),
                            "train_proxy": float(history["reward/proxy_raw"][-1])})
    episodes = steps * settings["batch_size"]
    result = {
        "trainer": "rlhf.ppo.PPOTrainer",
        "learning_rate": config.learning_rate,
        "value_model": config.value_model,
        "kl_coef": config.kl_coef,
        "episodes": episodes,
        "train_seconds": seconds,
        "episodes_per_second": episodes / seconds,
        "train_cpu_seconds": cpu,
        "episodes_per_cpu_second": episodes / cpu,
        "save_seconds": save_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_before_training": rss_before,
        "checkpoints": checkpoints,
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


def train_run(run: str, settings: dict, run_dir: Path) -> dict:
    """Train one run type in a fresh process; returns its result JSON (with its checkpoints)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    settings_path, result_path = run_dir / "settings.json", run_dir / "result.json"
    settings_path.write_text(json.dumps(dict(settings, output_dir=str(run_dir))))
    if run == "trl":
        cmd = [peer_python(), PEER_RUNNER, settings_path, result_path]
    else:
        cmd = [sys.executable, __file__, "--worker", "ours", settings_path, result_path]
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.run([str(c) for c in cmd], env=_worker_env(settings["threads"]), cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f"the {run} run failed (exit {proc.returncode})")
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


# --------------------------------------------------------------------------- statistics


def mean_sem(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error across seeds (nan with one value)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def gold_at_kl(curve: list[dict], kl: float) -> float | None:
    """Gold at ``kl`` on one seed's curve (its points in training order, the SFT policy first): linear
    between the first two consecutive points whose KLs bracket ``kl``; None when the curve never reaches it
    (never extrapolated)."""
    for a, b in zip(curve, curve[1:]):
        if min(a["kl"], b["kl"]) <= kl <= max(a["kl"], b["kl"]):
            if b["kl"] == a["kl"]:
                return a["gold"]
            return a["gold"] + (b["gold"] - a["gold"]) * (kl - a["kl"]) / (b["kl"] - a["kl"])
    return None


def frontier(curves: list[list[dict]]) -> list[dict]:
    """One run type's curve averaged over seeds, checkpoint by checkpoint (every seed has the same ones)."""
    points = []
    for at_checkpoint in zip(*curves):
        point = {"episodes": at_checkpoint[0]["episodes"]}
        for key in ("kl", "gold", "proxy", "length"):
            point[key], point[f"{key}_sem"] = mean_sem([p[key] for p in at_checkpoint])
        points.append(point)
    return points


def matched(curves: dict[str, list[list[dict]]]) -> list[dict]:
    """At each of TRL's checkpoints (after the start): TRL's mean KL and gold, and each of our runs' gold at that
    KL (interpolated on each seed's own curve, then averaged), with its seed-by-seed (paired) difference from
    TRL's gold and, for ``ours-reward``, from ``ours-default``'s. A run that some seed's curve does not take to
    that KL gets ``None`` (not reached) and the number of seeds whose curves do reach it."""
    rows = []
    trl = frontier(curves["trl"])
    for index, point in enumerate(trl[1:], start=1):
        row = {"episodes": point["episodes"], "kl": point["kl"], "kl_sem": point["kl_sem"],
               "trl": (point["gold"], point["gold_sem"])}
        trl_golds = [curve[index]["gold"] for curve in curves["trl"]]
        golds = {run: [gold_at_kl(curve, point["kl"]) for curve in curves[run]] for run in OUR_RUNS}
        for run in OUR_RUNS:
            reached = None not in golds[run]
            row[run] = mean_sem(golds[run]) if reached else None
            row[f"{run}_vs_trl"] = mean_sem([g - t for g, t in zip(golds[run], trl_golds)]) if reached else None
            row[f"{run}_reached"] = sum(g is not None for g in golds[run])
        if row["ours-default"] and row["ours-reward"]:
            row["reward_vs_default"] = mean_sem([r - d for r, d in zip(golds["ours-reward"], golds["ours-default"])])
        if LOW_KL_RUN in curves:
            front = [d if d is not None else gold_at_kl(low, point["kl"])
                     for d, low in zip(golds["ours-default"], curves[LOW_KL_RUN])]
            reached = None not in front
            row[FRONTIER] = mean_sem(front) if reached else None
            row[f"{FRONTIER}_vs_trl"] = mean_sem([g - t for g, t in zip(front, trl_golds)]) if reached else None
            row[f"{FRONTIER}_reached"] = sum(g is not None for g in front)
        rows.append(row)
    return rows


def overlap(curves: dict[str, list[list[dict]]], step: float = 0.25) -> list[dict]:
    """Where every seed's curve of every run type reaches (multiples of ``step`` nats up to the smallest of the
    curves' largest KLs): each run type's gold there, interpolated on each seed's own curve and averaged, and
    each of our runs' seed-paired difference from TRL, and ``ours-reward``'s from ``ours-default``."""
    top = min(max(p["kl"] for p in curve) for run_curves in curves.values() for curve in run_curves)
    rows = []
    for kl in [step * i for i in range(1, int(top / step) + 1)]:
        golds = {run: [gold_at_kl(curve, kl) for curve in run_curves] for run, run_curves in curves.items()}
        row = {"kl": kl, **{run: mean_sem(g) for run, g in golds.items()}}
        for run in OUR_RUNS:
            row[f"{run}_vs_trl"] = mean_sem([o - t for o, t in zip(golds[run], golds["trl"])])
        row["reward_vs_default"] = mean_sem([r - d for r, d in zip(golds["ours-reward"], golds["ours-default"])])
        rows.append(row)
    return rows


def speeds(runs: list[dict]) -> dict:
    """One run type's training results over seeds: rates averaged, the peak RSS the largest."""
    import numpy as np

    result = {key: float(np.mean([r[key] for r in runs])) for key in ("episodes_per_second", "episodes_per_cpu_second")}
    result.update(peak_rss_mb=max(r["peak_rss_mb"] for r in runs), episodes=runs[0]["episodes"],
                  load_average=[x for r in runs for x in r["load_average"]])
    return result


# --------------------------------------------------------------------------- report


def plot_frontier(fronts: dict[str, list[dict]], settings: dict, path: Path) -> None:
    """Gold vs KL, one line per run type (means over seeds, standard errors as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlhf.ppo import PPOConfig

    labels = {"trl": f"TRL 1.12 PPOTrainer (full fine-tuning, lr {settings['trl_learning_rate']:g})",
              "ours-default": f"ours, PPOConfig() defaults (value adapter, lr {PPOConfig.learning_rate:g})",
              "ours-reward": f"ours, reward-model critic, lr {settings['reward_learning_rate']:g}",
              LOW_KL_RUN: f"ours, PPOConfig() defaults but KL coefficient {settings.get('low_kl_coef', 0):g}"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run, points in fronts.items():
        ax.errorbar([p["kl"] for p in points], [p["gold"] for p in points], xerr=[p["kl_sem"] for p in points],
                    yerr=[p["gold_sem"] for p in points], marker="o", markersize=4, capsize=2, label=labels[run])
    ax.set_xlabel("KL to the SFT policy (nats per response, held-out prompts)")
    ax.set_ylabel("gold reward (held-out prompts)")
    ax.set_title("Gold reward vs KL along PPO training (tiny world; mean over seeds ± s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pm(pair: tuple[float, float] | None, reached: str = "") -> str:
    """``mean ± s.e.``, or "not reached" (``reached``: by how many seeds it is) where there is no value."""
    return f"not reached{reached}" if pair is None else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def frontier_table(fronts: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: KL and gold of every run type at each checkpoint (episodes), means over seeds ± s.e."""
    runs = list(fronts)
    lines = ["| episodes | " + " | ".join(f"{run}: KL | {run}: gold" for run in runs) + " |",
             "|---:|" + "---:|---:|" * len(runs)]
    by_episodes = sorted({p["episodes"] for points in fronts.values() for p in points})
    for episodes in by_episodes:
        cells = []
        for run in runs:
            point = next((p for p in fronts[run] if p["episodes"] == episodes), None)
            cells += (["–", "–"] if point is None else [f"{point['kl']:.2f} ± {point['kl_sem']:.2f}",
                                                         f"{point['gold']:.3f} ± {point['gold_sem']:.3f}"])
        lines.append(f"| {episodes}{' (SFT)' if episodes == 0 else ''} | " + " | ".join(cells) + " |")
    return lines


def speed_table(results: dict[str, dict]) -> list[str]:
    lines = ["| run | episodes | episodes/s (wall) | episodes per CPU-second | peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|"]
    for run, r in results.items():
        lines.append(f"| {RUN_NAMES[run]} | {r['episodes']} | {r['episodes_per_second']:.2f} | "
                     f"{r['episodes_per_cpu_second']:.2f} | {r['peak_rss_mb']:.0f} |")
    return lines


def _delta(pair: tuple[float, float]) -> str:
    """A seed-paired difference: mean ± standard error, and the mean in standard errors."""
    mean, sem = pair
    return f"{mean:+.3f} ± {sem:.3f}" + (f" ({mean / sem:+.1f} s.e.)" if sem > 0 else "")


def _kls(rows: list[dict]) -> str:
    return ", ".join(f"{row['kl']:.2f}" for row in rows)


def goals(run: str, ratio: float, basis: str, rows: list[dict], last: dict) -> str:
    """The sentence on goals (a) and (b) for one of our runs (``last``: its curve's last point, over seeds)."""
    speed_ok = ratio >= 3
    reached = [row for row in rows if row[run] is not None]
    missing = [row for row in rows if row[run] is None]
    short = [row for row in reached if row[run][0] < row["trl"][0]]
    gold_ok = not missing and not short
    diffs = ", ".join(f"KL {row['kl']:.2f}: {_delta(row[f'{run}_vs_trl'])}" for row in reached)
    text = (f"(a) ≥ 3x TRL's episodes per second: **{'met' if speed_ok else 'NOT met'}** ({ratio:.2f}x, {basis}); "
            f"(b) gold ≥ TRL's at every matched KL: **{'met' if gold_ok else 'NOT met'}**"
            + (f" (seed-paired gold difference ours − TRL at the matched KLs: {diffs})" if reached else "")
            + (f"; KL {_kls(missing)} not reached (its curve ends at KL {last['kl']:.2f} ± {last['kl_sem']:.2f} "
               f"with gold {last['gold']:.3f} ± {last['gold_sem']:.3f})" if missing else "")
            + (f"; below TRL at KL {_kls(short)}" if short else "")
            + (" — the speed comes with less gold there" if short and ratio > 1 else "") + ".")
    return text


def report(settings: dict, results: dict[str, dict], curves: dict[str, list[list[dict]]], versions: dict,
           n_eval_prompts: int, wall: float) -> tuple[str, dict[str, float]]:
    """The RESULTS.md section, and the speed ratio (ours / TRL) it states for each of our runs."""
    from rlhf.ppo import PPOConfig

    m = machine()
    # On a busy machine the processes get a varying share of the cores, so wall-clock speed
    # measures the neighbours; CPU time (user + system, all threads) does not.
    busiest = max(max(r["load_average"]) for r in results.values())
    quiet = busiest <= (m["cores"] or 1) + 0.5
    basis = "wall-clock" if quiet else "CPU time"
    key = "episodes_per_second" if quiet else "episodes_per_cpu_second"
    ratios = {run: results[run][key] / results["trl"][key] for run in OUR_RUNS}
    fronts = {run: frontier(curves[run]) for run in ("trl", *OUR_RUNS)}
    rows = matched(curves)
    default_episodes = results["ours-default"]["episodes"]
    lines = [
        "## RLHF: the course's PPO trainer vs TRL's PPOTrainer (trl 1.12.0), gold reward vs KL",
        "",
        f"`{settings['command']}` on {dt.date.today().isoformat()}: {m['cpu']}, "
        f"{m['cores']} cores, {settings['threads']} torch thread(s) per run, one run at a time, {m['system']}, "
        f"Python {m['python']}. 1-minute load average during the runs: up to {busiest:.1f}"
        + (" (a quiet machine)." if quiet else f" (a busy machine: more runnable processes than its {m['cores']} "
           "cores, so the wall-clock figures measure the neighbours too; the ratios use CPU time)."),
        "",
        f"Same tiny Phi SFT policy, reward model, {len(settings['prompts'])} training prompts, "
        f"{settings['batch_size']} responses per PPO step, responses of at most {settings['response_length']} tokens, "
        f"{settings['num_mini_batches']} minibatches x {settings['ppo_epochs']} PPO epochs, temperature "
        f"{settings['temperature']}, KL coefficient {settings['kl_coef']} (k1), clip 0.2, value clip 0.2, value "
        f"coefficient 0.1, GAE λ 0.95, EOS penalty 1.0, gradient clip 1.0, linear learning-rate decay to 0 over each "
        f"run, {settings['total_episodes']} episodes"
        + (f" ({default_episodes} for ours-default)" if default_episodes != settings["total_episodes"] else "")
        + f", seeds {', '.join(map(str, settings['seeds']))} (each run type once per seed). Each run saves its "
        f"policy every {settings['checkpoint_every']} PPO steps "
        f"({settings['checkpoint_every'] * settings['batch_size']} "
        "episodes; saving is not counted as training time); the SFT policy is every curve's first point. "
        f"Every checkpoint rated by the same code (`rlhf.evaluation.evaluate_policy`) on {n_eval_prompts} held-out "
        f"prompts, {settings['eval_samples']} sample(s) each: gold reward (chapter 10's gold rater), KL to the SFT "
        "policy (nats per response). Means over the seeds ± the standard error of that mean across seeds.",
        "",
        "Run types:",
        f"- **trl**: {RUN_NAMES['trl']}, learning rate {settings['trl_learning_rate']:g} on every weight (the value "
        "model, initialised from the reward model, is trained too); the best of 1e-4, 3e-4 and 1e-3 by mean gold "
        "over seeds 0–2 after 640 episodes (0.764, 0.847, 0.797).",
        f"- **ours-default**: {RUN_NAMES['ours-default']}: LoRA policy and value adapters on one shared base, "
        f"`value_model={PPOConfig.value_model!r}`, learning rate {PPOConfig.learning_rate:g} — `PPOConfig`'s own "
        "defaults for everything the script does not share with TRL"
        + (f"; trained for {default_episodes} episodes (its schedule spanning them) because at the shared budget it "
           "stays far below TRL's KL range (KL 0.8 after 640 episodes); where even the longer run stays short of a "
           "KL, the tables say \"not reached\"" if default_episodes != settings["total_episodes"] else "") + ".",
        f"- **ours-reward**: {RUN_NAMES['ours-reward']} (`value_model='reward'`: the frozen reward model's normalised "
        "score of each prefix plus an MLP correction trained on its hidden states, so the update runs the base once "
        f"per minibatch instead of twice), learning rate {settings['reward_learning_rate']:g} (the best of a short "
        "sweep over 3e-4, 1e-3 and 2e-3 with the value adapter, not re-swept for this critic). NOT the defaults: a "
        "labelled alternative.",
        *([f"- **{LOW_KL_RUN}**: {RUN_NAMES[LOW_KL_RUN]}, {settings['low_kl_coef']:g} instead of "
           f"{settings['kl_coef']:g}, and {results[LOW_KL_RUN]['episodes']} episodes: the same trainer further along "
           "the KL axis. With it, the defaults' frontier over the KL coefficient (**ours-frontier**): at each KL, "
           "on each seed, ours-default's curve where it reaches that KL, else this run's (which curve serves is "
           "decided by the KL, never by which gold is higher)."] if LOW_KL_RUN in results else []),
        "",
        "Speed (training only: model loading, checkpoint saving and evaluation excluded; ours includes its one-off "
        "reward-normalisation sampling"
        + (f", spread over {default_episodes} episodes for ours-default"
           if default_episodes != settings["total_episodes"] else "") + "; peak RSS is the whole training process):",
        "",
        *speed_table(results),
        "",
        "Gold reward and KL to the SFT policy at each checkpoint (run types side by side; – where a run has no "
        "checkpoint), plotted in [rlhf_vs_trl_frontier.png](rlhf_vs_trl_frontier.png):",
        "",
        *frontier_table(fronts),
        "",
        "Gold at TRL's checkpoint KLs: TRL's mean KL at each checkpoint; ours' gold at that KL interpolated linearly "
        "on each seed's own (KL, gold) curve, then averaged over the seeds (never extrapolated: \"not reached\" when "
        "some seed's curve stops short of that KL). Δ = the seed-paired difference (same seed, same evaluation "
        "random numbers) ± its standard error.",
        "",
        "| TRL checkpoint (episodes) | KL | TRL gold | ours-default gold | Δ ours-default − TRL | ours-reward gold "
        "| Δ ours-reward − TRL | Δ ours-reward − ours-default |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    n_seeds = len(settings["seeds"])
    for row in rows:
        cells = [f"{row['episodes']}", f"{row['kl']:.2f} ± {row['kl_sem']:.2f}", _pm(row["trl"])]
        for run in OUR_RUNS:
            cells += [_pm(row[run], f" ({row[f'{run}_reached']} of {n_seeds} seeds reach it)"),
                      _delta(row[f"{run}_vs_trl"]) if row[f"{run}_vs_trl"] else "–"]
        lines.append("| " + " | ".join(cells + [_delta(row["reward_vs_default"]) if "reward_vs_default" in row
                                                else "–"]) + " |")
    if rows and FRONTIER in rows[0]:
        lines += [
            "",
            f"The defaults' frontier over the KL coefficient at TRL's checkpoint KLs (ours-default's curve where it "
            f"reaches the KL, else {LOW_KL_RUN}'s; interpolated on each seed's own curves as above):",
            "",
            "| TRL checkpoint (episodes) | KL | TRL gold | ours-frontier gold | Δ ours-frontier − TRL |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            reach = f" ({row[f'{FRONTIER}_reached']} of {n_seeds} seeds reach it)"
            delta = row[f"{FRONTIER}_vs_trl"]
            lines.append(f"| {row['episodes']} | {row['kl']:.2f} ± {row['kl_sem']:.2f} | {_pm(row['trl'])} | "
                         f"{_pm(row[FRONTIER], reach)} | {_delta(delta) if delta else '–'} |")
    lines += [
        "",
        "Where the three frontiers overlap (every seed of every run type reaches the KL): each run type's gold "
        "interpolated on each seed's own curve, then averaged; Δ seed-paired as above.",
        "",
        "| KL | TRL gold | ours-default gold | Δ ours-default − TRL | ours-reward gold | Δ ours-reward − TRL "
        "| Δ ours-reward − ours-default |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {row['kl']:.2f} | {_pm(row['trl'])} | {_pm(row['ours-default'])} | {_delta(row['ours-default_vs_trl'])} "
          f"| {_pm(row['ours-reward'])} | {_delta(row['ours-reward_vs_trl'])} | {_delta(row['reward_vs_default'])} |"
          for row in overlap(curves)),
        "",
        "Goals (a matched KL is one of TRL's checkpoint KLs, as in the first of the two tables above):",
        "",
    ]
    for run in OUR_RUNS:
        wall_ratio = results[run]["episodes_per_second"] / results["trl"]["episodes_per_second"]
        cpu_ratio = results[run]["episodes_per_cpu_second"] / results["trl"]["episodes_per_cpu_second"]
        lines.append(f"- **{run}** (speed ours / TRL: wall-clock {wall_ratio:.2f}x, per CPU-second {cpu_ratio:.2f}x): "
                     + goals(run, ratios[run], basis, rows, fronts[run][-1]))
    if LOW_KL_RUN in results:
        lines.append(f"- **{FRONTIER}** (ours-default's settings and speed, KL coefficients {settings['kl_coef']:g} "
                     f"and {settings['low_kl_coef']:g}): "
                     + goals(FRONTIER, ratios["ours-default"], basis, rows, frontier(curves[LOW_KL_RUN])[-1]))
    compared = [row for row in rows if "reward_vs_default" in row]
    if compared:
        better = sum(row["reward_vs_default"][0] > 0 for row in compared)
        lines.append("- ours-reward − ours-default, seed-paired gold at TRL's matched KLs: "
                     + ", ".join(f"KL {row['kl']:.2f}: {_delta(row['reward_vs_default'])}" for row in compared)
                     + f" (higher at {better} of {len(compared)}); speed "
                     f"{ratios['ours-reward'] / ratios['ours-default']:.2f}x ours-default's ({basis}).")
    lines += [
        "",
        f"Versions — course environment: torch {versions['ours']['torch']}, transformers "
        f"{versions['ours']['transformers']}, trl {versions['ours']['trl']}, peft {versions['ours']['peft']}; "
        f"peer environment (`benchmarks/.venv-trl112`): torch {versions['trl']['torch']}, transformers "
        f"{versions['trl']['transformers']}, trl {versions['trl']['trl']}. TRL 1.12.0's PPOTrainer runs with the "
        "course's transformers version, so the peer environment pins that same version. Whole benchmark: "
        f"{wall / 60:.1f} min.",
    ]
    return "\n".join(lines), ratios


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--episodes", type=int, default=640, help="episodes (responses) each run samples")
    parser.add_argument("--default-episodes", type=int, default=1536,
                        help="episodes of ours-default, to take it into TRL's KL range (0: --episodes)")
    parser.add_argument("--batch-size", type=int, default=64, help="responses per PPO step")
    parser.add_argument("--minibatches", type=int, default=4, help="minibatches per PPO epoch")
    parser.add_argument("--ppo-epochs", type=int, default=4, help="PPO epochs per step")
    parser.add_argument("--response-length", type=int, default=32, help="longest response in tokens")
    parser.add_argument("--checkpoint-every", type=int, default=2, help="PPO steps between saved policies")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each process")
    parser.add_argument("--trl-lr", type=float, default=3e-4, help="learning rate of TRL's trainer (full fine-tuning)")
    parser.add_argument("--reward-lr", type=float, default=2e-3, help="learning rate of ours-reward (LoRA)")
    parser.add_argument("--low-kl-coef", type=float, default=0.02,
                        help=f"KL coefficient of {LOW_KL_RUN}, the defaults' frontier beyond their own KL (0: no such run)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (--seed, --seed + 1, ...)")
    parser.add_argument("--eval-prompts", type=int, default=256, help="held-out prompts for the gold reward")
    parser.add_argument("--eval-samples", type=int, default=4, help="samples per held-out prompt")
    parser.add_argument("--smoke", action="store_true", help="seconds: every piece once on tiny budgets ("
                        + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + "); never writes RESULTS.md")
    parser.add_argument("--no-trl", action="store_true",
                        help="the course's runs only (no peer environment); prints, never writes RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write every measurement (per seed and checkpoint) here")
    parser.add_argument("--plot", type=Path, help=f"where the plot goes (default {FRONTIER_PNG.relative_to(ROOT)} "
                        "when RESULTS.md is written, else no plot)")
    parser.add_argument("--no-write", action="store_true", help="print the results only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.worker == "ours":
        return run_ours(*args.paths)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    for name in ("episodes", "default_episodes"):
        if getattr(args, name) % args.batch_size:
            parser.error(f"--{name.replace('_', '-')} must be a multiple of --batch-size")
    if args.seeds < 1 or args.eval_samples < 1 or args.checkpoint_every < 1:
        parser.error("--seeds, --eval-samples and --checkpoint-every must be at least 1")
    if args.low_kl_coef < 0:
        parser.error("--low-kl-coef must be >= 0 (0: no low-KL run)")
    write = not (args.no_write or args.smoke or args.no_trl)
    plot = args.plot or (FRONTIER_PNG if write else None)

    wall = time.perf_counter()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    sys.path.insert(0, str(ROOT))
    import peft
    import torch
    import transformers
    import trl

    transformers.utils.logging.disable_progress_bar()  # the evaluations load three models per checkpoint
    versions = {"ours": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "trl": trl.__version__, "peft": peft.__version__}}
    if not args.no_trl:
        versions["trl"] = ensure_peer_env()
    from rlhf.stages import reward_model_dir, sft_model_dir
    from rlhf.tiny_world import load_prompts

    sft_dir, reward_dir = str(sft_model_dir()), str(reward_model_dir())
    settings = default_settings(args)
    train_prompts = load_prompts("train")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sft_dir)
    command = " ".join(["python benchmarks/rlhf_vs_trl_ppo.py", *(sys.argv[1:] if argv is None else argv)])
    settings.update(command=command,
                    policy_dir=sft_dir, reward_dir=reward_dir, prompts=train_prompts,
                    prompt_ids=tokenizer(train_prompts, add_special_tokens=False)["input_ids"],
                    eval_samples=args.eval_samples, trl_learning_rate=args.trl_lr, reward_learning_rate=args.reward_lr,
                    low_kl_coef=args.low_kl_coef)
    eval_prompts = load_prompts("eval")[: args.eval_prompts]

    seeds = list(range(args.seed, args.seed + args.seeds))
    settings["seeds"] = seeds
    run_types = (*(() if args.no_trl else ("trl",)), *OUR_RUNS, *((LOW_KL_RUN,) if args.low_kl_coef else ()))
    runs: dict[str, list[dict]] = {run: [] for run in run_types}
    curves: dict[str, list[list[dict]]] = {run: [] for run in run_types}
    work = Path(tempfile.mkdtemp(prefix="rlhf-vs-trl-"))
    try:
        # every training process first, every evaluation after: a child process inherits its parent's peak
        # resident memory (Linux keeps ru_maxrss across fork and exec), so the parent stays small until then
        for seed in seeds:
            for run in run_types:
                print(f"training: {run}, seed {seed} ...", flush=True)
                r = train_run(run, run_settings(run, dict(settings, seed=seed), args), work / f"seed{seed}" / run)
                runs[run].append(r)
                print(f"  {r['episodes']} episodes in {r['train_seconds']:.1f} s = {r['episodes_per_second']:.2f} "
                      f"episodes/s ({r['episodes_per_cpu_second']:.2f} per CPU-second), {len(r['checkpoints'])} "
                      f"checkpoints, peak RSS {r['peak_rss_mb']:.0f} MiB", flush=True)
        torch.set_num_threads(args.threads)
        for index, seed in enumerate(seeds):
            eval_settings = dict(settings, seed=seed)
            sft = dict(evaluate(sft_dir, eval_prompts, eval_settings, reward_dir, sft_dir), episodes=0)
            print(f"  SFT, seed {seed}: gold {sft['gold']:.3f}, KL {sft['kl']:.2f}", flush=True)
            for run in run_types:
                curve = [sft]
                for checkpoint in runs[run][index]["checkpoints"]:
                    point = evaluate(checkpoint["policy_dir"], eval_prompts, eval_settings, reward_dir, sft_dir)
                    curve.append(dict(point, episodes=checkpoint["episodes"]))
                curves[run].append(curve)
                print(f"  {run}, seed {seed}: (KL, gold) " + " ".join(f"({p['kl']:.2f}, {p['gold']:.3f})"
                                                                       for p in curve), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {run: speeds(runs[run]) for run in run_types}
    fronts = {run: frontier(curves[run]) for run in run_types}
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: v for k, v in settings.items() if "prompt" not in k},
                                         "versions": versions, "runs": runs, "curves": curves, "speeds": results,
                                         "frontiers": fronts}, indent=1))
    if plot:
        plot_frontier(fronts, settings, plot)
        print(f"plotted {plot}")
    if args.no_trl:
        print("\n".join(["", *speed_table(results), "", *frontier_table(fronts)]))
        return 0
    text, ratios = report(settings, results, curves, versions, len(eval_prompts), time.perf_counter() - wall)
    print()
    print(text)
    print("\nRATIO (ours / TRL episodes per second): "
          + ", ".join(f"{run} {ratio:.2f}" for run, ratio in ratios.items()))
    if write:
        write_section(text)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
