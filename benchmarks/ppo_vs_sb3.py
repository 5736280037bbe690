"""This course's PPO against Stable-Baselines3's PPO on CartPole-v1, side by side.

Run it with one command from the repository root, in the course's environment::

    python benchmarks/ppo_vs_sb3.py

Stable-Baselines3 is a benchmark-only dependency: the course never imports it. On first use
the script creates ``benchmarks/.venv-sb3`` (git-ignored) layered over the running
environment (a ``.pth`` file points at its site-packages, so both learners use the very
same torch, numpy, gymnasium and course packages), installs ``benchmarks/requirements.txt`` into it, and
re-runs itself there. ``--no-venv`` skips that when SB3 is already importable.

Protocol:

- Stable-Baselines3's PPO with rl-zoo's tuned CartPole-v1 settings (8 envs, n_steps 32,
  batch 256, 20 epochs, gamma 0.98, lambda 0.8, entropy 0, learning rate linear from 1e-3,
  clip range linear from 0.2); this course's PPO with its defaults (``PPOConfig()``:
  the same envs, batch, gamma, lambda, clip range and schedules, 15 epochs instead of 20,
  learning rate 4e-3 instead of 1e-3). Both 100k steps; each seed trains the full budget.
- Every learner runs in its own fresh process, single-threaded torch, on CPU; the two
  alternate in order from seed to seed. A tiny warm-up (torch's one-off optimizer import)
  runs before the clock starts.
- After every update, once ``--eval-every`` environment steps have passed since the last
  evaluation (and until the threshold is first reached), the greedy policy is evaluated
  with :func:`rl_basics.agents.rollout.evaluate` on 20 CartPole-v1 episodes with fixed seeds;
  the clocks pause during evaluation. Reported: environment steps and seconds (wall-clock
  and CPU) until the mean evaluation return first reaches 475, and the evaluation return
  after the full budget.
- Environment steps count every sub-env step. For this course's PPO that includes
  gymnasium 1.x's autoreset steps (one per episode), which SB3's own vector env does not have.
- The same kind of environment for both, so that the learners are compared and not the env
  implementations: SB3 steps its ``DummyVecEnv`` of 8 ``CartPole-v1`` envs (each in SB3's
  ``Monitor``), this course's PPO a gymnasium ``SyncVectorEnv`` of 8 ``CartPole-v1`` envs
  (``gym.make_vec(..., vectorization_mode="sync")``): both step one Python CartPole object
  per sub-env in a loop. (``ppo.train("CartPole-v1")`` would pick gymnasium's faster
  numpy-vectorised ``CartPoleVectorEnv``; the benchmark does not.) What remains of the env
  difference is measured: each env kind steps 100,000 random actions in a fresh process
  before the runs, and the section reports the seconds and what they amount to over the
  median steps to 475.

The table goes to ``benchmarks/RESULTS.md`` between this benchmark's markers (other
sections of that file are left alone), with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone

from sb3_common import (  # benchmarks/sb3_common.py (this script's own folder is on sys.path)
    RESULTS,
    THRESHOLD,
    SB3Actor,
    Tracker,
    comparison_table,
    machine,
    run_seeds,
    run_worker,
    sb3_python,
    time_env as time_env_kind,
    verdict,
    versions,
    worker as run_measured,
    write_section,
)

START, END = "<!-- ppo_vs_sb3:start -->", "<!-- ppo_vs_sb3:end -->"
ZOO = dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
           learning_rate=1e-3, clip_range=0.2)


# --------------------------------------------------------------------------- one training run (worker process)


def ours_env(num_envs: int):
    """A gymnasium SyncVectorEnv of separate CartPole-v1 envs: the same kind of env as SB3's DummyVecEnv."""
    import gymnasium as gym

    return gym.make_vec("CartPole-v1", num_envs, vectorization_mode="sync")


def sb3_env(num_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("CartPole-v1", n_envs=num_envs, seed=seed)


def run_ours(seed: int, total: int, tracker: Tracker) -> tuple[object, int]:
    from rl_basics.agents import ppo

    config = ppo.PPOConfig(total_timesteps=total)  # the course's defaults
    env = ours_env(config.num_envs)
    result = ppo.train(env, config, seed=seed, progress=False, num_threads=1,
                       callback=lambda info: tracker.maybe_evaluate(info["actor"], info["env_steps"]))
    env.close()
    return result.actor, int(result.history["update_steps"][-1])


def run_sb3(seed: int, total: int, tracker: Tracker) -> tuple[object, int]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Callback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # the previous update has just finished
            tracker.maybe_evaluate(SB3Actor(self.model), self.num_timesteps)

    def linear(start):
        return lambda progress_remaining: progress_remaining * start

    env = sb3_env(ZOO["n_envs"], seed)
    model = PPO("MlpPolicy", env, n_steps=ZOO["n_steps"], batch_size=ZOO["batch_size"], n_epochs=ZOO["n_epochs"],
                gamma=ZOO["gamma"], gae_lambda=ZOO["gae_lambda"], ent_coef=ZOO["ent_coef"],
                learning_rate=linear(ZOO["learning_rate"]), clip_range=linear(ZOO["clip_range"]),
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=total, callback=Callback())
    env.close()
    return SB3Actor(model), int(model.num_timesteps)


ENV_KINDS = {  # timed before the runs; "native" is what ppo.train("CartPole-v1") would use, not used here
    "ours": "a gymnasium SyncVectorEnv of 8 CartPole-v1",
    "sb3": "SB3's DummyVecEnv of 8 CartPole-v1, each in a Monitor",
    "native": "gymnasium's numpy-vectorised CartPoleVectorEnv",
}


def time_env(kind: str, steps: int = 100_000, num_envs: int = 8) -> float:
    """CPU seconds to step an env kind ``steps`` times (summed over sub-envs) with random actions."""
    import gymnasium as gym

    make = {"ours": lambda: ours_env(num_envs), "sb3": lambda: sb3_env(num_envs, 0),
            "native": lambda: gym.make_vec("CartPole-v1", num_envs)}[kind]
    return time_env_kind(make, steps, seed=None if kind == "sb3" else 0)


def worker(learner: str, seed: int, total: int, eval_every: int, n_episodes: int) -> dict:
    run = run_ours if learner == "ours" else run_sb3
    return run_measured(learner, seed, lambda seed, tracker: run(seed, total, tracker), eval_every, n_episodes)


# --------------------------------------------------------------------------- orchestration and report


def ours_settings() -> str:
    from rl_basics.agents import ppo

    c = ppo.PPOConfig()
    return (f"{c.num_envs} envs x {c.n_steps} steps, minibatch {c.minibatch_size}, {c.update_epochs} epochs, "
            f"gamma {c.gamma}, lambda {c.gae_lambda}, entropy {c.ent_coef}, learning rate and clip range linear from "
            f"{c.learning_rate:g} and {c.clip_coef:g}, value-loss weight {c.vf_coef:g} on 0.5 (V - R)^2, "
            f"gradient norm {c.max_grad_norm:g}")


def report(runs: list[dict], args, load_before, load_after, env_seconds: dict[str, float]) -> str:
    by = {(r["learner"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        START,
        "## PPO vs Stable-Baselines3 on CartPole-v1",
        "",
        f"Written by `benchmarks/ppo_vs_sb3.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(`{' '.join(['python', 'benchmarks/ppo_vs_sb3.py', *sys.argv[1:]])}`).",
        "",
        f"- Machine: {machine()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(other processes share the machine: compare the two learners, not absolute times).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        f"- SB3: rl-zoo's tuned CartPole-v1 PPO: {ZOO['n_envs']} envs x {ZOO['n_steps']} steps, "
        f"batch {ZOO['batch_size']}, {ZOO['n_epochs']} epochs, gamma {ZOO['gamma']}, lambda {ZOO['gae_lambda']}, "
        f"entropy {ZOO['ent_coef']}, learning rate and clip range linear from {ZOO['learning_rate']:g} and "
        f"{ZOO['clip_range']:g}.",
        f"- Ours: `rl_basics.agents.ppo.PPOConfig()` defaults: {ours_settings()}.",
        f"- Both: {args.total_timesteps:,} steps per run, torch single-threaded on CPU, each run in a fresh process.",
        "- Environments of the same kind (one Python CartPole object per sub-env, stepped in a loop): "
        f"ours: {ENV_KINDS['ours']}; SB3: {ENV_KINDS['sb3']}.",
        f"- Evaluation: greedy policy, mean return over {args.episodes} episodes (fixed seeds), every "
        f"{args.eval_every:,} environment steps until it first reaches {THRESHOLD:g}, and once after training. "
        "Clocks exclude evaluation.",
        "",
    ]
    table, cols, med = comparison_table(runs)
    lines += table
    lines += verdict(cols, med, len(seeds), env_seconds, "single seeds vary by a factor of 5 (the evaluation every 2,048 "
                     "steps also quantises the step counts)")
    lines += [
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=2048, help="environment steps between evaluations")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--no-venv", action="store_true", help="use the running interpreter (SB3 must be importable)")
    parser.add_argument("--no-write", action="store_true", help="print the table without writing RESULTS.md")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--time-env", choices=tuple(ENV_KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.seed, args.total_timesteps, args.eval_every, args.episodes)))
        return
    if args.time_env:
        print(json.dumps(time_env(args.time_env)))
        return

    python = sb3_python(__file__, args.no_venv)
    load_before = os.getloadavg()
    env_seconds = {kind: json.loads(run_worker(python, __file__, "--time-env", kind)) for kind in ENV_KINDS}
    print("100,000 random-action env steps, CPU s: "
          + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in env_seconds.items()), flush=True)
    runs = run_seeds(python, __file__, args.seeds, ["--total-timesteps", str(args.total_timesteps),
                                                    "--eval-every", str(args.eval_every), "--episodes", str(args.episodes)])
    section = report(runs, args, load_before, os.getloadavg(), env_seconds)
    print(section)
    if not args.no_write:
        write_section(section, START, END)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
