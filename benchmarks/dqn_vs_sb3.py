"""This course's DQN against Stable-Baselines3's DQN on CartPole-v1, side by side.

Run it with one command from the repository root, in the course's environment::

    python benchmarks/dqn_vs_sb3.py            # the full benchmark (about 15 minutes on 2 cores)
    python benchmarks/dqn_vs_sb3.py --smoke    # a few seconds: every piece once, tiny budgets, RESULTS.md untouched

Stable-Baselines3 is a benchmark-only dependency, installed into ``benchmarks/.venv-sb3`` on first use
exactly as for ``benchmarks/ppo_vs_sb3.py`` (see ``benchmarks/sb3_common.py``, which both scripts share).

Protocol (the PPO benchmark's, with DQN's settings):

- Stable-Baselines3's DQN with rl-zoo's tuned CartPole-v1 settings (one env, learning rate 2.3e-3, batch 64,
  buffer 100,000, learning starts 1,000, gamma 0.99, target update interval 10, a training phase of 128
  gradient steps every 256 environment steps, epsilon from 1 to 0.04 over the first 16% of training, a 256-256
  ReLU network); this course's DQN with its defaults (``DQNConfig()``, see its docstring for how they were
  tuned). Both 50,000 steps; each seed trains the full budget.
- Every learner runs in its own fresh process, single-threaded torch, on CPU; the two alternate in order from
  seed to seed; a tiny warm-up runs before the clock starts.
- After every training phase, once ``--eval-every`` environment steps have passed since the last evaluation
  (until the threshold is first reached), the greedy policy is evaluated with
  :func:`rl_basics.agents.rollout.evaluate` on 20 CartPole-v1 episodes with fixed seeds; the clocks pause during
  evaluation. Reported: environment steps and seconds (wall-clock and CPU) until the mean evaluation return
  first reaches 475, and the evaluation return after the full budget.
- Environment steps count every sub-env step. For this course's DQN that includes gymnasium 1.x's autoreset
  steps (one per episode, never stored as transitions), which SB3's own vector env does not have.
- The same kind of environment: SB3 steps its ``DummyVecEnv`` of one ``CartPole-v1`` (in SB3's ``Monitor``),
  this course's DQN a gymnasium ``SyncVectorEnv`` of ``DQNConfig().num_envs`` ``CartPole-v1`` envs: both step
  one Python CartPole object per sub-env. The cost of each env kind is measured (100,000 random-action steps in
  a fresh process) and reported.

The table goes to ``benchmarks/RESULTS.md`` between this benchmark's markers (other sections are left alone).
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
    time_env,
    verdict,
    versions,
    worker,
    write_section,
)

START, END = "<!-- dqn_vs_sb3:start -->", "<!-- dqn_vs_sb3:end -->"
ZOO = dict(n_envs=1, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
           target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
           exploration_final_eps=0.04, net_arch=[256, 256])
SMOKE = dict(seeds=1, total_timesteps=2_048, eval_every=1_024, episodes=2, env_steps=4_000)


def ours_env(num_envs: int):
    """A gymnasium SyncVectorEnv of separate CartPole-v1 envs: the same kind of env as SB3's DummyVecEnv."""
    import gymnasium as gym

    return gym.make_vec("CartPole-v1", num_envs, vectorization_mode="sync")


def sb3_env(num_envs: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("CartPole-v1", n_envs=num_envs, seed=seed)


def run_ours(seed: int, total: int, tracker: Tracker) -> tuple[object, int]:
    from rl_basics.agents import dqn

    config = dqn.DQNConfig(total_timesteps=total)  # the course's defaults
    env = ours_env(config.num_envs)
    result = dqn.train(env, config, seed=seed, progress=False, num_threads=1,
                       callback=lambda info: tracker.maybe_evaluate(info["actor"], info["env_steps"]))
    env.close()
    return result.actor, int(result.history["update_steps"][-1])


def run_sb3(seed: int, total: int, tracker: Tracker) -> tuple[object, int]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    class Callback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # the previous training phase has just finished
            tracker.maybe_evaluate(SB3Actor(self.model), self.num_timesteps)

    settings = {k: v for k, v in ZOO.items() if k not in ("n_envs", "net_arch")}
    env = sb3_env(ZOO["n_envs"], seed)
    model = DQN("MlpPolicy", env, policy_kwargs=dict(net_arch=ZOO["net_arch"]), seed=seed, device="cpu", verbose=0,
                **settings)
    model.learn(total_timesteps=total, callback=Callback())
    env.close()
    return SB3Actor(model), int(model.num_timesteps)


def env_kinds() -> dict[str, str]:
    from rl_basics.agents.dqn import DQNConfig

    n = DQNConfig().num_envs
    return {"ours": f"a gymnasium SyncVectorEnv of {n} CartPole-v1",
            "sb3": "SB3's DummyVecEnv of 1 CartPole-v1 in a Monitor",
            "native": f"gymnasium's numpy-vectorised CartPoleVectorEnv of {n}"}


def time_env_kind(kind: str, steps: int) -> float:
    """CPU seconds per 100,000 random-action steps of an env kind, measured over ``steps`` steps."""
    import gymnasium as gym

    from rl_basics.agents.dqn import DQNConfig

    n = DQNConfig().num_envs
    make = {"ours": lambda: ours_env(n), "sb3": lambda: sb3_env(ZOO["n_envs"], 0),
            "native": lambda: gym.make_vec("CartPole-v1", n)}[kind]
    return time_env(make, steps, seed=None if kind == "sb3" else 0) * 100_000 / steps


def ours_settings() -> str:
    from rl_basics.agents.dqn import DQNConfig

    c = DQNConfig()
    return (f"{c.num_envs} envs, learning rate {c.learning_rate:g}, batch {c.batch_size}, buffer {c.buffer_size:,}, "
            f"learning starts {c.learning_starts:,}, gamma {c.gamma}, {c.gradient_steps} gradient steps every "
            f"{c.train_frequency} environment steps, target network copied every {c.target_update_interval} gradient "
            f"steps, epsilon from {c.exploration_initial_eps:g} to {c.exploration_final_eps:g} over the first "
            f"{c.exploration_fraction:.0%}, {'Huber' if c.huber else 'squared'} loss, "
            f"{'-'.join(map(str, c.hidden_sizes))} tanh network"
            + ("" if c.max_grad_norm is None else f", gradient norm {c.max_grad_norm:g}"))


def report(runs: list[dict], args, load_before, load_after, env_seconds: dict[str, float]) -> str:
    seeds = sorted({r["seed"] for r in runs})
    kinds = env_kinds()
    table, cols, med = comparison_table(runs)
    lines = [
        START,
        "## DQN vs Stable-Baselines3 on CartPole-v1",
        "",
        f"Written by `benchmarks/dqn_vs_sb3.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(`{' '.join(['python', 'benchmarks/dqn_vs_sb3.py', *sys.argv[1:]])}`).",
        "",
        f"- Machine: {machine()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(other processes share the machine: compare the two learners, not absolute times).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        f"- SB3: rl-zoo's tuned CartPole-v1 DQN: {ZOO['n_envs']} env, learning rate {ZOO['learning_rate']:g}, "
        f"batch {ZOO['batch_size']}, buffer {ZOO['buffer_size']:,}, learning starts {ZOO['learning_starts']:,}, "
        f"gamma {ZOO['gamma']}, target update interval {ZOO['target_update_interval']} (environment steps), "
        f"{ZOO['gradient_steps']} gradient steps every {ZOO['train_freq']} environment steps, epsilon to "
        f"{ZOO['exploration_final_eps']} over the first {ZOO['exploration_fraction']:.0%}, "
        f"{'-'.join(map(str, ZOO['net_arch']))} ReLU network, Huber loss, gradient norm 10.",
        f"- Ours: `rl_basics.agents.dqn.DQNConfig()` defaults: {ours_settings()}.",
        f"- Both: {args.total_timesteps:,} steps per run, torch single-threaded on CPU, each run in a fresh process.",
        "- Environments of the same kind (one Python CartPole object per sub-env, stepped in a loop): "
        f"ours: {kinds['ours']}; SB3: {kinds['sb3']}.",
        f"- Evaluation: greedy policy, mean return over {args.episodes} episodes (fixed seeds), after the first "
        f"training phase that ends {args.eval_every:,} or more environment steps after the previous evaluation, until "
        f"it first reaches {THRESHOLD:g}, and once after training. Clocks exclude evaluation.",
        "",
        *table,
        *verdict(cols, med, len(seeds), env_seconds, f"single seeds vary a lot (DQN's greedy return jumps between "
                 f"plateaus; the evaluation every {args.eval_every:,} steps also quantises the step counts)"),
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (default 10)")
    parser.add_argument("--total-timesteps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=2048, help="environment steps between evaluations")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a quick check of the whole pipeline ({SMOKE}); prints, never writes RESULTS.md")
    parser.add_argument("--no-venv", action="store_true", help="use the running interpreter (SB3 must be importable)")
    parser.add_argument("--no-write", action="store_true", help="print the table without writing RESULTS.md")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--time-env", choices=("ours", "sb3", "native"), help=argparse.SUPPRESS)
    parser.add_argument("--env-steps", type=int, default=100_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
        args.no_write = True

    if args.worker:
        run = run_ours if args.worker == "ours" else run_sb3
        record = worker(args.worker, args.seed, lambda seed, tracker: run(seed, args.total_timesteps, tracker),
                        args.eval_every, args.episodes)
        print(json.dumps(record))
        return
    if args.time_env:
        print(json.dumps(time_env_kind(args.time_env, args.env_steps)))
        return

    python = sb3_python(__file__, args.no_venv)
    load_before = os.getloadavg()
    env_seconds = {kind: json.loads(run_worker(python, __file__, "--time-env", kind, "--env-steps", str(args.env_steps)))
                   for kind in ("ours", "sb3", "native")}
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
