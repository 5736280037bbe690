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
  with :func:`rl_basics.agents.core.evaluate` on 20 CartPole-v1 episodes with fixed seeds;
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
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (this script's own folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-sb3"
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- ppo_vs_sb3:start -->", "<!-- ppo_vs_sb3:end -->"
THRESHOLD = 475.0
ZOO = dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
           learning_rate=1e-3, clip_range=0.2)


# --------------------------------------------------------------------------- environment


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_sb3_venv() -> Path:
    """Create benchmarks/.venv-sb3 over the current environment and install SB3 into it."""
    python = venv_python()
    if not python.exists():
        print(f"creating {VENV} (layered over {sys.prefix})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        import sysconfig

        parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        # "import" lines of a .pth file run at start-up; addsitedir also processes the parent's own
        # .pth files (the course's editable install among them)
        lines = [f"import site; site.addsitedir({path!r})" for path in sorted(parents)]
        (Path(site) / "_course_env.pth").write_text("\n".join(lines) + "\n")
    probe = subprocess.run([str(python), "-c", "import stable_baselines3"], capture_output=True)
    if probe.returncode != 0:
        print("installing benchmarks/requirements.txt into it", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements.txt")],
                       check=True)
    return python


# --------------------------------------------------------------------------- one training run (worker process)


class Clock:
    """Wall-clock and CPU time since start, minus the time spent evaluating."""

    def __init__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.paused_wall = self.paused_cpu = 0.0

    def now(self) -> tuple[float, float]:
        return (time.perf_counter() - self.wall0 - self.paused_wall, time.process_time() - self.cpu0 - self.paused_cpu)


class Tracker:
    """Evaluates the greedy policy every ``eval_every`` steps until the threshold is reached."""

    def __init__(self, eval_every: int, n_episodes: int):
        self.eval_every, self.n_episodes = eval_every, n_episodes
        self.clock = Clock()
        self.last = 0
        self.first: dict | None = None
        self.evals: list[tuple[int, float]] = []

    def evaluate(self, actor) -> tuple[float, float]:
        from rl_basics.agents.core import evaluate

        return evaluate(actor, "CartPole-v1", n_episodes=self.n_episodes, greedy=True, seed=10_000)

    def maybe_evaluate(self, actor, env_steps: int) -> None:
        if self.first is not None or env_steps - self.last < self.eval_every:
            return
        self.last = env_steps
        wall, cpu = self.clock.now()
        w0, c0 = time.perf_counter(), time.process_time()
        mean, _ = self.evaluate(actor)
        self.clock.paused_wall += time.perf_counter() - w0
        self.clock.paused_cpu += time.process_time() - c0
        self.evals.append((env_steps, mean))
        if mean >= THRESHOLD:
            self.first = {"steps": env_steps, "seconds": wall, "cpu_seconds": cpu}


def warm_up() -> None:
    import torch

    torch.set_num_threads(1)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo


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


class SB3Actor:
    """``act(obs, greedy)`` over an SB3 policy, for rl_basics' evaluate."""

    def __init__(self, model):
        self.model = model

    def act(self, obs, greedy=True):
        import numpy as np

        actions, _ = self.model.predict(np.asarray(obs), deterministic=greedy)
        return actions


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
    import numpy as np

    env = {"ours": lambda: ours_env(num_envs), "sb3": lambda: sb3_env(num_envs, 0),
           "native": lambda: gym.make_vec("CartPole-v1", num_envs)}[kind]()
    actions = np.random.default_rng(0).integers(0, 2, size=(steps // num_envs, num_envs))
    env.reset(seed=0) if kind != "sb3" else env.reset()
    start = time.process_time()
    for action in actions:
        env.step(action)
    seconds = time.process_time() - start
    env.close()
    return seconds


def worker(learner: str, seed: int, total: int, eval_every: int, n_episodes: int) -> dict:
    warm_up()
    tracker = Tracker(eval_every, n_episodes)
    actor, steps = (run_ours if learner == "ours" else run_sb3)(seed, total, tracker)
    train_wall, train_cpu = tracker.clock.now()
    final_mean, final_std = tracker.evaluate(actor)
    return {"learner": learner, "seed": seed, "first": tracker.first, "final_return": final_mean,
            "final_std": final_std, "train_seconds": train_wall, "train_cpu_seconds": train_cpu,
            "env_steps": steps, "evals": tracker.evals}


# --------------------------------------------------------------------------- orchestration and report


def ours_settings() -> str:
    from rl_basics.agents import ppo

    c = ppo.PPOConfig()
    return (f"{c.num_envs} envs x {c.n_steps} steps, minibatch {c.minibatch_size}, {c.update_epochs} epochs, "
            f"gamma {c.gamma}, lambda {c.gae_lambda}, entropy {c.ent_coef}, learning rate and clip range linear from "
            f"{c.learning_rate:g} and {c.clip_coef:g}, value-loss weight {c.vf_coef:g} on 0.5 (V - R)^2, "
            f"gradient norm {c.max_grad_norm:g}")


def versions() -> dict[str, str]:
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "gymnasium": gymnasium.__version__,
            "numpy": numpy.__version__, "stable-baselines3": stable_baselines3.__version__}


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {cpu_model()}, {os.cpu_count()} logical cores"


def median(values):
    finite = [v for v in values if v is not None]
    return statistics.median(finite) if len(finite) == len(values) and finite else None


def fmt(value, digits=1):
    return "—" if value is None else (f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}")


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
        "| seed | steps to 475: ours | SB3 | ratio | wall s to 475: ours | SB3 | ratio | CPU s to 475: ours | SB3 "
        "| final return: ours | SB3 | full-run wall s: ours | SB3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def first(r, key):
        return None if r["first"] is None else r["first"][key]

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    cols = {k: {"ours": [], "sb3": []} for k in ("steps", "seconds", "cpu_seconds", "final", "train")}
    for seed in seeds:
        o, s = by[("ours", seed)], by[("sb3", seed)]
        for name, r in (("ours", o), ("sb3", s)):
            cols["steps"][name].append(first(r, "steps"))
            cols["seconds"][name].append(first(r, "seconds"))
            cols["cpu_seconds"][name].append(first(r, "cpu_seconds"))
            cols["final"][name].append(r["final_return"])
            cols["train"][name].append(r["train_seconds"])
        lines.append(
            f"| {seed} | {fmt(first(o, 'steps'), 0)} | {fmt(first(s, 'steps'), 0)} "
            f"| {fmt(ratio(first(o, 'steps'), first(s, 'steps')), 2)} "
            f"| {fmt(first(o, 'seconds'))} | {fmt(first(s, 'seconds'))} "
            f"| {fmt(ratio(first(o, 'seconds'), first(s, 'seconds')), 2)} "
            f"| {fmt(first(o, 'cpu_seconds'))} | {fmt(first(s, 'cpu_seconds'))} "
            f"| {fmt(o['final_return'])} | {fmt(s['final_return'])} | {fmt(o['train_seconds'])} | {fmt(s['train_seconds'])} |"
        )
    med = {k: {n: median(v[n]) for n in ("ours", "sb3")} for k, v in cols.items()}
    lines.append(
        f"| **median** | **{fmt(med['steps']['ours'], 0)}** | **{fmt(med['steps']['sb3'], 0)}** "
        f"| **{fmt(ratio(med['steps']['ours'], med['steps']['sb3']), 2)}** "
        f"| **{fmt(med['seconds']['ours'])}** | **{fmt(med['seconds']['sb3'])}** "
        f"| **{fmt(ratio(med['seconds']['ours'], med['seconds']['sb3']), 2)}** "
        f"| **{fmt(med['cpu_seconds']['ours'])}** | **{fmt(med['cpu_seconds']['sb3'])}** "
        f"| **{fmt(med['final']['ours'])}** | **{fmt(med['final']['sb3'])}** "
        f"| **{fmt(med['train']['ours'])}** | **{fmt(med['train']['sb3'])}** |"
    )
    def mean(values):
        return statistics.fmean(values) if values and None not in values else None

    avg = {k: {n: mean(v[n]) for n in ("ours", "sb3")} for k, v in cols.items()}
    lines.append(
        f"| mean | {fmt(avg['steps']['ours'], 0)} | {fmt(avg['steps']['sb3'], 0)} "
        f"| {fmt(ratio(avg['steps']['ours'], avg['steps']['sb3']), 2)} "
        f"| {fmt(avg['seconds']['ours'])} | {fmt(avg['seconds']['sb3'])} "
        f"| {fmt(ratio(avg['seconds']['ours'], avg['seconds']['sb3']), 2)} "
        f"| {fmt(avg['cpu_seconds']['ours'])} | {fmt(avg['cpu_seconds']['sb3'])} "
        f"| {fmt(avg['final']['ours'])} | {fmt(avg['final']['sb3'])} "
        f"| {fmt(avg['train']['ours'])} | {fmt(avg['train']['sb3'])} |"
    )
    pairs = [(o, s) for o, s in zip(cols["steps"]["ours"], cols["steps"]["sb3"]) if o is not None and s is not None]
    fewer_steps = sum(o <= s for o, s in pairs)
    time_pairs = [(o, s) for o, s in zip(cols["seconds"]["ours"], cols["seconds"]["sb3"]) if o is not None and s is not None]
    half_time = sum(o <= 0.5 * s for o, s in time_pairs)
    reached = {n: sum(v is not None for v in cols["steps"][n]) for n in ("ours", "sb3")}
    steps_ratio = ratio(med["steps"]["ours"], med["steps"]["sb3"])
    time_ratio = ratio(med["seconds"]["ours"], med["seconds"]["sb3"])
    per_step = {name: env_seconds[name] / 100_000 for name in ("ours", "sb3")}
    env_ours = None if med["steps"]["ours"] is None else per_step["ours"] * med["steps"]["ours"]
    env_sb3 = None if med["steps"]["sb3"] is None else per_step["sb3"] * med["steps"]["sb3"]
    env_share = None if env_ours is None or env_sb3 is None else env_sb3 - env_ours
    wall_gap = None if time_ratio is None else med["seconds"]["sb3"] - med["seconds"]["ours"]
    fair_ratio = None if time_ratio is None else ratio(
        med["seconds"]["ours"] + (per_step["sb3"] - per_step["ours"]) * med["steps"]["ours"], med["seconds"]["sb3"])
    goal_steps = steps_ratio is not None and steps_ratio <= 1.0
    goal_time = time_ratio is not None and time_ratio <= 0.5
    lines += [
        "",
        f"Reached 475: ours in {reached['ours']}/{len(seeds)} seeds, SB3 in {reached['sb3']}/{len(seeds)}. "
        "Ratios are ours / SB3 (below 1: ours needs less). Seed by seed, ours needed no more steps than SB3 in "
        f"{fewer_steps}/{len(pairs)} seeds and at most half its wall-clock time in {half_time}/{len(time_pairs)}; "
        "single seeds vary by a factor of 5 (the evaluation every 2,048 steps also quantises the step counts), "
        "so the medians carry the comparison.",
        "",
        f"Environment cost: 100,000 random-action steps take {env_seconds['ours']:.2f} s of CPU in ours' env, "
        f"{env_seconds['sb3']:.2f} s in SB3's (gymnasium's numpy-vectorised CartPole, which the benchmark does not "
        f"use: {env_seconds['native']:.2f} s). Over the median steps to 475 that is {fmt(env_ours, 2)} s for ours and "
        f"{fmt(env_sb3, 2)} s for SB3: the env implementations account for {fmt(env_share, 2)} s of the "
        f"{fmt(wall_gap, 1)} s gap between the median wall-clock times to 475. Had ours paid SB3's env cost per "
        f"step, its wall-clock ratio would be {fmt(fair_ratio, 2)}.",
        "",
        f"Goal (medians over seeds): no more environment steps than SB3 — **{'met' if goal_steps else 'not met'}** "
        f"(ratio {fmt(steps_ratio, 2)}); at most half its wall-clock time — **{'met' if goal_time else 'not met'}** "
        f"(ratio {fmt(time_ratio, 2)}).",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; do not edit by hand.\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


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

    python = Path(sys.executable)
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        if args.no_venv:
            sys.exit("stable-baselines3 is not importable; drop --no-venv to let the script make its own venv")
        python = ensure_sb3_venv()
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    load_before = os.getloadavg()

    def run_worker(*flags: str) -> str:
        out = subprocess.run([str(python), __file__, *flags], check=True, capture_output=True, text=True, env=env,
                             cwd=ROOT).stdout
        return out.strip().splitlines()[-1]

    env_seconds = {kind: json.loads(run_worker("--time-env", kind)) for kind in ENV_KINDS}
    print("100,000 random-action env steps, CPU s: "
          + ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in env_seconds.items()), flush=True)
    runs = []
    for seed in range(args.seeds):
        order = ("ours", "sb3") if seed % 2 == 0 else ("sb3", "ours")
        for learner in order:
            run = json.loads(run_worker("--worker", learner, "--seed", str(seed),
                                        "--total-timesteps", str(args.total_timesteps),
                                        "--eval-every", str(args.eval_every), "--episodes", str(args.episodes)))
            runs.append(run)
            first = run["first"]
            print(f"seed {seed} {learner:>4}: "
                  + (f"475 at {first['steps']:,} steps, {first['seconds']:.1f} s" if first else "never reached 475")
                  + f"; final {run['final_return']:.1f}; full run {run['train_seconds']:.1f} s", flush=True)
    section = report(runs, args, load_before, os.getloadavg(), env_seconds)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
