"""The sweeps behind ``rl_basics.agents.ppo.PRESETS``: each env's candidate settings on tuning seeds.

Run it from the repository root, in the course's environment::

    python benchmarks/ppo_presets_sweep.py --env Acrobot-v1 --jobs 2    # one env's sweep; writes its section
    python benchmarks/ppo_presets_sweep.py --jobs 2                     # every env (about 40 min on 2 cores)
    python benchmarks/ppo_presets_sweep.py --smoke                      # seconds: two candidates, tiny budgets

Each candidate is a complete ``PPOConfig`` (:data:`BASE` for the env with the candidate's changes), trained with
the benchmark's protocol and budget (``benchmarks/ppo_vs_sb3.py``'s ``ENVS``: the same threshold, evaluation
interval, 20-episode greedy evaluation, sync vector env, one single-threaded process per run) on the tuning
seeds 100, 101, ... — never the benchmark's seeds 0-5, so the benchmark measures the presets on held-out seeds.

Reported per candidate: how many seeds reached the threshold, the median steps and CPU seconds to it (a seed
that never reached it counts as needing more than any that did), and the median final return. The rule that
picks a preset, applied by :func:`best`: among the candidates whose median final return is within
:data:`FINAL_SLACK` of the best candidate's, the one with the fewest median steps to the threshold, then the
least CPU time. The table marks the pick and the candidate equal to the current preset; the preset's docstring
quotes the result. Records are kept in ``benchmarks/runs/ppo_presets_sweep/`` (``--resume`` reuses them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from datetime import datetime, timezone

from ppo_vs_sb3 import ENVS, SMOKE_STEPS, fingerprint  # benchmarks/ppo_vs_sb3.py (this script's own folder is on sys.path)
from sb3_common import HERE, fmt, machine, median, run_seeds, sb3_python, versions, write_section

FINAL_SLACK = {"CartPole-v1": 5.0, "Acrobot-v1": 3.0, "Pendulum-v1": 10.0, "LunarLander-v3": 15.0}
"""How far below the best median final return a candidate may end and still be picked for speed."""

BASE: dict[str, dict] = {
    "CartPole-v1": dict(num_envs=8, n_steps=32, minibatch_size=256, update_epochs=15, learning_rate=4e-3,
                        gamma=0.98, gae_lambda=0.8),
    "Acrobot-v1": dict(num_envs=8, n_steps=128, minibatch_size=256, update_epochs=4, learning_rate=2e-3,
                       gamma=0.99, gae_lambda=0.94),
    "Pendulum-v1": dict(num_envs=4, n_steps=1024, minibatch_size=256, update_epochs=10, learning_rate=2e-3,
                        anneal_clip=False, gamma=0.9, gae_lambda=0.95, reward_scale=0.1),
    "LunarLander-v3": dict(num_envs=16, n_steps=512, minibatch_size=128, update_epochs=4, learning_rate=6e-4,
                           anneal_clip=False, gamma=0.999, gae_lambda=0.98, ent_coef=0.01, reward_scale=0.01),
}
"""Each env's starting point: the settings every candidate changes (rl-zoo's for the env, adapted as each
preset's docstring says)."""

CANDIDATES: dict[str, dict[str, dict]] = {
    "CartPole-v1": {
        "base": {},
        "20 epochs": dict(update_epochs=20),
        "10 epochs, lr 5e-3": dict(update_epochs=10, learning_rate=5e-3),
        "lr 3e-3": dict(learning_rate=3e-3),
        "16 envs": dict(num_envs=16, minibatch_size=512),
    },
    "Acrobot-v1": {
        "base": {},
        "lr 1e-3": dict(learning_rate=1e-3),
        "8 epochs": dict(update_epochs=8),
        "16 envs": dict(num_envs=16, minibatch_size=512),
        "64 steps, minibatch 128": dict(n_steps=64, minibatch_size=128),
        "gamma 0.995": dict(gamma=0.995),
        "normalised observations": dict(normalize_obs=True),
        "normalised observations, 8 epochs": dict(normalize_obs=True, update_epochs=8),
        "8 epochs, minibatch 128, lr 1e-3": dict(update_epochs=8, minibatch_size=128, learning_rate=1e-3),
        "minibatch 64, lr 5e-4": dict(minibatch_size=64, learning_rate=5e-4),
        "8 epochs, lr 3e-3": dict(update_epochs=8, learning_rate=3e-3),
        "normalised rewards": dict(normalize_rewards=True),
        "normalised rewards, 8 epochs": dict(normalize_rewards=True, update_epochs=8),
        "normalised observations and rewards, 8 epochs": dict(normalize_obs=True, normalize_rewards=True,
                                                              update_epochs=8),
        "normalised rewards, lr 1e-3": dict(normalize_rewards=True, learning_rate=1e-3),
        "normalised rewards, 8 epochs, lr 1e-3": dict(normalize_rewards=True, update_epochs=8, learning_rate=1e-3),
        "normalised rewards, 16 envs": dict(normalize_rewards=True, num_envs=16, minibatch_size=512),
    },
    "Pendulum-v1": {
        "base": {},
        "lr 3e-3": dict(learning_rate=3e-3),
        "minibatch 128": dict(minibatch_size=128),
        "15 epochs": dict(update_epochs=15),
        "8 envs x 512": dict(num_envs=8, n_steps=512),
        "lambda 0.9": dict(gae_lambda=0.9),
        "normalised observations": dict(normalize_obs=True),
        "15 epochs, 512 steps per env, minibatch 128": dict(update_epochs=15, n_steps=512, minibatch_size=128),
        "minibatch 64, lr 1e-3": dict(minibatch_size=64, learning_rate=1e-3),
        "normalised rewards (not x0.1)": dict(reward_scale=1.0, normalize_rewards=True),
        "15 epochs, 512 steps per env, minibatch 128, normalised rewards": dict(
            update_epochs=15, n_steps=512, minibatch_size=128, reward_scale=1.0, normalize_rewards=True),
        "normalised rewards, 15 epochs": dict(update_epochs=15, reward_scale=1.0, normalize_rewards=True),
        "15 epochs, 512 steps per env, minibatch 128, normalised rewards, lr 1e-3": dict(
            update_epochs=15, n_steps=512, minibatch_size=128, reward_scale=1.0, normalize_rewards=True,
            learning_rate=1e-3),
    },
    "LunarLander-v3": {
        "base": {},
        "rewards unscaled": dict(reward_scale=1.0),
        "minibatch 256, lr 1e-3": dict(minibatch_size=256, learning_rate=1e-3),
        "rl-zoo's 1,024 steps, minibatch 64, lr 3e-4": dict(n_steps=1024, minibatch_size=64, learning_rate=3e-4),
    },
}
"""Each env's candidates: changes to :data:`BASE`."""

TUNING_SEED = 100
RUNS = HERE / "runs" / "ppo_presets_sweep"


def candidate_config(env_id: str, changes: dict, total: int):
    from rl_basics.agents.ppo import PPOConfig

    return PPOConfig(total_timesteps=total, **{**BASE[env_id], **changes})


def summarise(runs: list[dict], threshold: float) -> dict:
    steps = [None if r["first"] is None else r["first"]["steps"] for r in runs]
    cpu = [None if r["first"] is None else r["first"]["cpu_seconds"] for r in runs]
    return {"reached": sum(s is not None for s in steps), "n": len(runs), "steps": median(steps), "cpu": median(cpu),
            "final": statistics.median(r["final_return"] for r in runs),
            "finals": [r["final_return"] for r in runs]}


def best(env_id: str, summaries: dict[str, dict]) -> str:
    """The rule that picks a preset (see the module docstring)."""
    top = max(s["final"] for s in summaries.values())
    eligible = {k: s for k, s in summaries.items() if s["final"] >= top - FINAL_SLACK[env_id]}
    return min(eligible, key=lambda k: (math.inf if eligible[k]["steps"] is None else eligible[k]["steps"],
                                        math.inf if eligible[k]["cpu"] is None else eligible[k]["cpu"]))


def section(env_id: str, summaries: dict[str, dict], configs: dict, seeds: list[int], total: int) -> str:
    from rl_basics.agents import ppo

    bench = ENVS[env_id]
    pick = best(env_id, summaries)
    lines = [
        f"<!-- ppo_presets_sweep:{env_id}:start -->",
        f"### {env_id}: the sweep behind its preset",
        "",
        f"Written by `benchmarks/ppo_presets_sweep.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(`{' '.join(['python', 'benchmarks/ppo_presets_sweep.py', *sys.argv[1:]])}`); {machine()}; "
        + ", ".join(f"{k} {v}" for k, v in versions().items() if k != "stable-baselines3") + ".",
        "",
        f"Base settings: `{BASE[env_id]}`; {total:,} steps per run, tuning seeds "
        f"{seeds[0]}-{seeds[-1]}, threshold {bench.threshold:g}, evaluation every {bench.eval_every:,} steps "
        "(the benchmark's protocol). Pick: among the candidates within "
        f"{FINAL_SLACK[env_id]:g} of the best median final return, the fewest median steps to the threshold.",
        "",
        "| candidate | changes | reached | median steps to threshold | median CPU s to it | median final return "
        "| final return per seed |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, s in summaries.items():
        marks = (" **(pick)**" if name == pick else "") + (
            " (= the preset)" if configs[name] == dataclasses.replace(ppo.PRESETS[env_id],
                                                                    total_timesteps=bench.total_timesteps) else "")
        lines.append(f"| {name}{marks} | `{CANDIDATES[env_id][name] or '-'}` | {s['reached']}/{s['n']} | "
                     f"{fmt(s['steps'], 0)} | {fmt(s['cpu'])} | {fmt(s['final'])} | "
                     + ", ".join(f"{f:.0f}" for f in s["finals"]) + " |")
    lines.append(f"<!-- ppo_presets_sweep:{env_id}:end -->")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", choices=tuple(CANDIDATES), help="an env to sweep (default all)")
    parser.add_argument("--seeds", type=int, default=4, help=f"tuning seeds {TUNING_SEED} .. {TUNING_SEED}+N-1")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, one core each")
    parser.add_argument("--resume", action="store_true", help="reuse kept records of runs with the same settings")
    parser.add_argument("--smoke", action="store_true", help="CartPole-v1, two candidates, one seed, tiny budget; "
                        "prints, never writes")
    parser.add_argument("--no-venv", action="store_true", help="use the running interpreter")
    parser.add_argument("--no-write", action="store_true", help="print without writing RESULTS.md")
    args = parser.parse_args()

    python = sb3_python(__file__, args.no_venv) if not args.smoke else sys.executable
    envs = ["CartPole-v1"] if args.smoke else (args.env or list(CANDIDATES))
    seeds = [TUNING_SEED] if args.smoke else list(range(TUNING_SEED, TUNING_SEED + args.seeds))
    script = str(HERE / "ppo_vs_sb3.py")
    for env_id in envs:
        bench = ENVS[env_id]
        total = SMOKE_STEPS if args.smoke else bench.total_timesteps
        names = list(CANDIDATES[env_id])[:2] if args.smoke else list(CANDIDATES[env_id])
        summaries, configs = {}, {}
        for name in names:
            config = candidate_config(env_id, CANDIDATES[env_id][name], total)
            configs[name] = config
            overrides = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                         if f.name != "total_timesteps"}
            flags = ["--worker-env", env_id, "--total-timesteps", str(total), "--overrides", json.dumps(overrides),
                     *(["--smoke", "--episodes", "2"] if args.smoke else [])]
            runs = run_seeds(python, script, seeds, flags, jobs=args.jobs, learners=("ours",),
                             label=f"{env_id} [{name}] ", cache=None if args.smoke else RUNS / env_id / name,
                             fingerprints={"ours": fingerprint(ENVS[env_id], "ours", total, 20, overrides)},
                             resume=args.resume)
            summaries[name] = summarise(runs, bench.threshold)
        text = section(env_id, summaries, configs, seeds, total)
        print(text, flush=True)
        if not (args.smoke or args.no_write):
            write_section(text, f"<!-- ppo_presets_sweep:{env_id}:start -->",
                          f"<!-- ppo_presets_sweep:{env_id}:end -->")


if __name__ == "__main__":
    main()
