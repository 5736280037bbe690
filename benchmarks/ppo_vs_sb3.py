"""This course's PPO against Stable-Baselines3's PPO on four gymnasium environments, side by side.

Run it from the repository root, in the course's environment::

    python benchmarks/ppo_vs_sb3.py --jobs 2     # the full benchmark: 4 envs x 6 seeds x 2 learners (about an hour
                                                 # on 2 cores, most of it SB3 on LunarLander: 8-12 min per run)
    python benchmarks/ppo_vs_sb3.py --quick      # CartPole-v1 only, 6 seeds (about 6 min, 3 with --jobs 2); never writes
    python benchmarks/ppo_vs_sb3.py --env Acrobot-v1 --env Pendulum-v1   # some envs; writes their sections
    python benchmarks/ppo_vs_sb3.py --smoke      # seconds: every piece once on tiny budgets; prints, never writes

Stable-Baselines3 and Box2D (for LunarLander) are benchmark-only dependencies: the course never imports them.
On first use the script creates ``benchmarks/.venv-sb3`` (git-ignored) layered over the running environment
(see ``benchmarks/sb3_common.py``), installs ``benchmarks/requirements.txt`` into it and re-runs itself there.

Protocol, per environment (:data:`ENVS`):

- Stable-Baselines3's PPO with rl-zoo's tuned settings for the env (``rl_zoo3/hyperparams/ppo.yml``, rl-zoo
  2.9: observation and reward normalisation where it says ``normalize``, gSDE for Pendulum-v1); this course's
  PPO with its preset for the env, ``rl_basics.agents.ppo.PRESETS[env_id]`` (each preset's docstring says how it
  was tuned: ``benchmarks/ppo_presets_sweep.py`` on seeds 100 and up, never the benchmark's seeds 0-5).
- Both learners train the same number of environment steps (:attr:`Benchmark.total_timesteps`: rl-zoo's budget,
  or less where rl-zoo's would not fit a 2-core machine; rl-zoo's settings for those envs have no schedule
  that depends on the budget), each seed once, each run in a fresh single-threaded process on CPU; the two
  alternate in order from seed to seed, ``--jobs`` runs at a time (one core each).
- The same kind of environment: SB3's ``DummyVecEnv`` (each env in SB3's ``Monitor``) and a gymnasium
  ``SyncVectorEnv``, both stepping one Python env object per sub-env in a loop. The cost of each kind is
  measured (100,000 random-action steps in a fresh process) and reported.
- After every update, once :attr:`Benchmark.eval_every` environment steps have passed since the last
  evaluation (until the threshold is first reached), the greedy policy's mean return over 20 episodes with
  fixed seeds (:func:`rl_basics.agents.rollout.evaluate`); the clocks pause while evaluating. Reported: steps,
  wall-clock and CPU seconds until the mean first reaches the threshold (CartPole 475, Acrobot -100,
  Pendulum -200, LunarLander 200), and the mean return after the full budget ("final").
- Environment steps count every sub-env step, including gymnasium 1.x's autoreset steps for this course's
  PPO (one per episode), which SB3's vector env does not have.
- Goal, per env on the medians over seeds: no more steps to the threshold than SB3, at most 0.4x its
  wall-clock time to it, and a final return no lower than SB3's.

Each run's record is kept in ``benchmarks/runs/ppo_vs_sb3/`` (git-ignored) with a fingerprint of everything
that defines it; ``--resume`` reuses the records whose fingerprint still matches, so an interrupted benchmark
continues where it stopped. Each env's table goes to its own section of ``benchmarks/RESULTS.md``, the
summary over envs to another (written only when every env has a section).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sb3_common import (  # benchmarks/sb3_common.py (this script's own folder is on sys.path)
    HERE,
    RESULTS,
    SB3Actor,
    Tracker,
    beats,
    comparison_table,
    fmt,
    kept_run,
    machine,
    ratio,
    run_seeds,
    run_worker,
    sb3_python,
    time_env,
    verdict,
    versions,
    worker as run_measured,
    write_section,
)

WALL_GOAL = 0.4
"""The goal's bound on ours' wall-clock time to the threshold, as a fraction of SB3's."""


@dataclass(frozen=True)
class Benchmark:
    """One environment of the benchmark: what counts as solving it, the budget, and rl-zoo's SB3 settings."""

    env_id: str
    threshold: float
    """The mean greedy return over 20 episodes that counts as reaching the goal."""
    total_timesteps: int
    """Environment steps each learner trains for (both learners, every seed)."""
    eval_every: int
    """Environment steps between greedy evaluations until the threshold is reached."""
    zoo: dict = field(default_factory=dict)
    """rl-zoo's PPO hyperparameters for the env (SB3's names; ``lin_x`` is linear from x to 0)."""
    normalize: bool = False
    """rl-zoo's ``normalize: true``: SB3 trains on ``VecNormalize`` (observations and rewards)."""
    budget_note: str = "rl-zoo's budget"


ENVS: dict[str, Benchmark] = {
    "CartPole-v1": Benchmark(
        "CartPole-v1", 475.0, 100_000, 2048,
        dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
             learning_rate="lin_0.001", clip_range="lin_0.2")),
    "Acrobot-v1": Benchmark(
        "Acrobot-v1", -100.0, 100_000, 4096,
        dict(n_envs=16, n_steps=256, n_epochs=4, gamma=0.99, gae_lambda=0.94, ent_coef=0.0), normalize=True,
        budget_note="rl-zoo trains 1M steps; its settings have no schedule, so the first 100k are the same run"),
    "Pendulum-v1": Benchmark(
        "Pendulum-v1", -200.0, 100_000, 4096,
        dict(n_envs=4, n_steps=1024, n_epochs=10, gamma=0.9, gae_lambda=0.95, ent_coef=0.0, learning_rate=1e-3,
             clip_range=0.2, use_sde=True, sde_sample_freq=4)),
    "LunarLander-v3": Benchmark(
        "LunarLander-v3", 200.0, 500_000, 16_384,
        dict(n_envs=16, n_steps=1024, batch_size=64, n_epochs=4, gamma=0.999, gae_lambda=0.98, ent_coef=0.01),
        budget_note="rl-zoo trains 1M steps; its settings have no schedule, so the first 500k are the same run"),
}
QUICK_ENV = "CartPole-v1"
SMOKE_STEPS = 2048
RUNS = HERE / "runs" / "ppo_vs_sb3"


def section_markers(env_id: str | None) -> tuple[str, str]:
    """RESULTS.md markers of one env's section, or (``None``) of the summary over envs."""
    name = "ppo_vs_sb3" if env_id is None else f"ppo_vs_sb3:{env_id}"
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


# --------------------------------------------------------------------------- one training run (worker process)


def ours_config(bench: Benchmark, total: int, overrides: dict | None = None):
    """The course's PPO settings for a run: the env's preset with the benchmark's budget (and any overrides)."""
    from rl_basics.agents import ppo

    return dataclasses.replace(ppo.PRESETS[bench.env_id], total_timesteps=total, **(overrides or {}))


def ours_env(env_id: str, num_envs: int):
    """A gymnasium SyncVectorEnv of separate envs: the same kind of env as SB3's DummyVecEnv."""
    import gymnasium as gym

    return gym.make_vec(env_id, num_envs, vectorization_mode="sync")


def sb3_env(bench: Benchmark, seed: int):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = make_vec_env(bench.env_id, n_envs=bench.zoo["n_envs"], seed=seed)
    return VecNormalize(env, gamma=bench.zoo["gamma"]) if bench.normalize else env


def run_ours(bench: Benchmark, seed: int, total: int, tracker: Tracker, overrides: dict | None) -> tuple[object, int]:
    from rl_basics.agents import ppo

    config = ours_config(bench, total, overrides)
    env = ours_env(bench.env_id, config.num_envs)
    result = ppo.train(env, config, seed=seed, progress=False, num_threads=1,
                       callback=lambda info: tracker.maybe_evaluate(info["actor"], info["env_steps"]))
    env.close()
    return result.actor, int(result.history["update_steps"][-1])


def sb3_kwargs(bench: Benchmark) -> dict:
    """rl-zoo's settings as SB3 ``PPO`` keyword arguments (``lin_x`` becomes a linear schedule from x)."""
    def value(v):
        if isinstance(v, str) and v.startswith("lin_"):
            start = float(v[4:])
            return lambda progress_remaining: progress_remaining * start
        return v

    return {k: value(v) for k, v in bench.zoo.items() if k != "n_envs"}


def run_sb3(bench: Benchmark, seed: int, total: int, tracker: Tracker) -> tuple[object, int]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Callback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:  # the previous update has just finished
            tracker.maybe_evaluate(SB3Actor(self.model), self.num_timesteps)

    env = sb3_env(bench, seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **sb3_kwargs(bench))
    model.learn(total_timesteps=total, callback=Callback())
    actor = SB3Actor(model)
    env.close()
    return actor, int(model.num_timesteps)


def time_env_kind(bench: Benchmark, kind: str, steps: int = 100_000) -> float:
    """CPU seconds to step an env kind (``"ours"`` or ``"sb3"``) 100,000 times with random actions."""
    from stable_baselines3.common.env_util import make_vec_env

    n = bench.zoo["n_envs"]
    make = {"ours": lambda: ours_env(bench.env_id, n),
            "sb3": lambda: make_vec_env(bench.env_id, n_envs=n, seed=0)}[kind]
    return time_env(make, steps, seed=None if kind == "sb3" else 0) * 100_000 / steps


def worker(learner: str, bench: Benchmark, seed: int, total: int, n_episodes: int, overrides: dict | None) -> dict:
    def run(seed, tracker):
        if learner == "ours":
            return run_ours(bench, seed, total, tracker, overrides)
        return run_sb3(bench, seed, total, tracker)

    return run_measured(learner, seed, run, bench.eval_every, n_episodes, bench.env_id, bench.threshold)


# --------------------------------------------------------------------------- orchestration and report


def ours_settings(bench: Benchmark) -> str:
    from rl_basics.agents import ppo

    c = ppo.PRESETS[bench.env_id]
    name = "PPOConfig()" if bench.env_id == "CartPole-v1" else f"ppo.{preset_name(bench.env_id)}"
    return (f"`{name}`: {c.num_envs} envs x {c.n_steps} steps, minibatch {c.minibatch_size}, {c.update_epochs} "
            f"epochs, gamma {c.gamma}, lambda {c.gae_lambda}, entropy {c.ent_coef}, learning rate "
            f"{'linear from ' if c.anneal_lr else ''}{c.learning_rate:g}, clip range "
            f"{'linear from ' if c.anneal_clip else ''}{c.clip_coef:g}, "
            f"{'rewards normalised' if c.normalize_rewards else f'reward scale {c.reward_scale:g}'}, "
            f"{'observations normalised, ' if c.normalize_obs else ''}value-loss weight {c.vf_coef:g} on 0.5 (V - R)^2, gradient norm {c.max_grad_norm:g}, hidden "
            f"{'-'.join(map(str, c.hidden_sizes))} tanh")


def preset_name(env_id: str) -> str:
    from rl_basics.agents import ppo

    return next(name for name, value in vars(ppo).items() if name.isupper() and value is ppo.PRESETS[env_id])


def zoo_settings(bench: Benchmark) -> str:
    z = {"batch_size": 64, "learning_rate": 3e-4, "clip_range": 0.2, **bench.zoo}  # SB3's defaults where rl-zoo has none
    def show(v):
        return f"linear from {v[4:]}" if isinstance(v, str) and v.startswith("lin_") else f"{v:g}"
    parts = [f"{z['n_envs']} envs x {z['n_steps']} steps", f"batch {z['batch_size']}", f"{z['n_epochs']} epochs",
             f"gamma {z['gamma']}", f"lambda {z['gae_lambda']}", f"entropy {z['ent_coef']}",
             f"learning rate {show(z['learning_rate'])}", f"clip range {show(z['clip_range'])}"]
    if bench.normalize:
        parts.append("VecNormalize (observations and rewards)")
    if z.get("use_sde"):
        parts.append(f"gSDE (sample frequency {z['sde_sample_freq']})")
    return ", ".join(parts) + " (SB3's defaults otherwise: 64-64 tanh networks, value-loss weight 0.5, gradient norm 0.5)"


def env_section(bench: Benchmark, runs: list[dict], args, load: tuple, env_seconds: dict, seeds: list[int]) -> str:
    start, end = section_markers(bench.env_id)
    lines = [
        start,
        f"### {bench.env_id}: PPO vs Stable-Baselines3",
        "",
        f"Written by `benchmarks/ppo_vs_sb3.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(`{' '.join(['python', 'benchmarks/ppo_vs_sb3.py', *sys.argv[1:]])}`), seeds {seeds[0]}-{seeds[-1]}.",
        "",
        f"- SB3: rl-zoo's tuned {bench.env_id} PPO: {zoo_settings(bench)}.",
        f"- Ours: {ours_settings(bench)}.",
        f"- Both: {bench.total_timesteps:,} steps per run ({bench.budget_note}); evaluation every "
        f"{bench.eval_every:,} steps until the mean greedy return over {args.episodes} episodes reaches "
        f"{bench.threshold:g}, and once after training. Load average {load[0]:.1f} before, {load[1]:.1f} after.",
        "",
    ]
    table, cols, med = comparison_table(runs, bench.threshold)
    lines += table
    lines += verdict(cols, med, len(seeds), env_seconds, "single seeds vary a lot (the evaluation interval also "
                     "quantises the step counts)", bench.threshold, WALL_GOAL, final_goal=True)
    lines.append(end)
    return "\n".join(lines) + "\n"


def summary_row(bench: Benchmark, runs: list[dict]) -> tuple[str, dict]:
    _, cols, med = comparison_table(runs, bench.threshold)
    n = len(cols["steps"]["ours"])
    reached = {k: sum(v is not None for v in cols["steps"][k]) for k in ("ours", "sb3")}
    steps, wall = ratio(med["steps"]["ours"], med["steps"]["sb3"]), ratio(med["seconds"]["ours"], med["seconds"]["sb3"])
    final = med["final"]
    goals = {"steps": beats(med["steps"]["ours"], med["steps"]["sb3"], 1.0),
             "wall": beats(med["seconds"]["ours"], med["seconds"]["sb3"], WALL_GOAL),
             "final": final["ours"] >= final["sb3"]}
    mark = {True: "met", False: "**not met**"}
    row = (f"| {bench.env_id} | {bench.threshold:g} | {bench.total_timesteps:,} | {reached['ours']}/{n} | "
           f"{reached['sb3']}/{n} | {fmt(med['steps']['ours'], 0)} | {fmt(med['steps']['sb3'], 0)} | "
           f"{fmt(steps, 2)} | {fmt(med['seconds']['ours'])} | {fmt(med['seconds']['sb3'])} | {fmt(wall, 2)} | "
           f"{fmt(med['cpu_seconds']['ours'])} | {fmt(med['cpu_seconds']['sb3'])} | {fmt(final['ours'])} | "
           f"{fmt(final['sb3'])} | {mark[goals['steps']]} | {mark[goals['wall']]} | {mark[goals['final']]} |")
    pairs = {k: [ratio(o, s) for o, s in zip(cols[k]["ours"], cols[k]["sb3"]) if o is not None and s is not None]
             for k in ("steps", "seconds", "cpu_seconds")}
    return row, {"goals": goals, "pairs": pairs}


def summary_section(results: dict[str, list[dict]], load: tuple, seeds: list[int]) -> str:
    start, end = section_markers(None)
    lines = [
        start,
        "## PPO vs Stable-Baselines3 on four environments",
        "",
        f"Written by `benchmarks/ppo_vs_sb3.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Machine: {machine()}; load average {load[0]:.1f} before, {load[1]:.1f} after.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        f"- Seeds {seeds[0]}-{seeds[-1]}, each learner once per seed in a fresh single-threaded process; SB3 with "
        "rl-zoo's tuned settings for each env, ours with `ppo.PRESETS[env_id]` (tuned by "
        "`benchmarks/ppo_presets_sweep.py` on seeds 100 and up); greedy evaluation over 20 episodes; clocks "
        "exclude evaluation. The protocol is the script's docstring; each env's per-seed table follows.",
        "",
        "Medians over seeds (a run that never reached the threshold counts as needing more than any that did; — "
        "where that makes the median itself a run that never reached it, which counts as slower than any number):",
        "",
        "| env | threshold | steps per run | reached: ours | SB3 | steps to threshold: ours | SB3 | ratio "
        "| wall s: ours | SB3 | ratio | CPU s: ours | SB3 | final return: ours | SB3 | goal: steps <= SB3 "
        f"| wall <= {WALL_GOAL:g}x | final >= SB3 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    pooled = {"steps": [], "seconds": [], "cpu_seconds": []}
    met = {"steps": 0, "wall": 0, "final": 0}
    for env_id, runs in results.items():
        row, info = summary_row(ENVS[env_id], runs)
        lines.append(row)
        for k in pooled:
            pooled[k] += info["pairs"][k]
        for k in met:
            met[k] += info["goals"][k]
    n = len(results)
    med = {k: statistics.median(v) if v else None for k, v in pooled.items()}
    lines += [
        "",
        f"Overall, the median over every seed pair where both reached the threshold ({len(pooled['steps'])} pairs "
        f"over {n} envs) of ours / SB3: steps {fmt(med['steps'], 2)}, wall-clock {fmt(med['seconds'], 2)}, "
        f"CPU time {fmt(med['cpu_seconds'], 2)}.",
        "",
        f"Goals met: no more steps than SB3 in {met['steps']}/{n} envs, at most {WALL_GOAL:g}x its wall-clock "
        f"in {met['wall']}/{n}, a final return no lower than SB3's in {met['final']}/{n}"
        + (" — **every goal met on every env**." if sum(met.values()) == 3 * n else
           ". Where a goal is not met, the env's section below says by how much."),
        end,
    ]
    return "\n".join(lines) + "\n"


def config_changes(config) -> dict:
    """A ``PPOConfig``'s fields that differ from ``PPOConfig()``: what defines it, however many fields later
    releases add with defaults that keep the old behaviour."""
    from rl_basics.agents.ppo import PPOConfig

    default = PPOConfig()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(default, f.name)}


def fingerprint(bench: Benchmark, learner: str, total: int, episodes: int, overrides: dict | None) -> str:
    """Everything that defines a run's outcome, so that a kept record is reused only for the same run."""
    what = config_changes(ours_config(bench, total, overrides)) if learner == "ours" else bench
    return f"{learner} {total} {episodes} {what!r} {versions()['torch']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", choices=tuple(ENVS), help="an env to run (repeatable; default all)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0 .. N-1 (default 6)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per evaluation")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, one core each (default 1)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ENV} only; print, do not write")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets, 1 seed, every env that is importable; "
                        "print, do not write")
    parser.add_argument("--resume", action="store_true", help="reuse the kept records of runs with the same settings")
    parser.add_argument("--no-venv", action="store_true", help="use the running interpreter (SB3 must be importable)")
    parser.add_argument("--no-write", action="store_true", help="print the tables without writing RESULTS.md")
    parser.add_argument("--worker", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-env", choices=tuple(ENVS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--total-timesteps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--time-env", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker or args.time_env:
        bench = ENVS[args.worker_env]
        total = args.total_timesteps or bench.total_timesteps
        if args.smoke:
            bench = dataclasses.replace(bench, eval_every=1024)
        out = (worker(args.worker, bench, args.seed, total, args.episodes, json.loads(args.overrides)) if args.worker
               else time_env_kind(bench, args.time_env, 2_000 if args.smoke else 100_000))
        print(json.dumps(out))
        return

    python = sb3_python(__file__, args.no_venv)
    envs = [QUICK_ENV] if args.quick else (args.env or list(ENVS))
    if args.smoke:
        envs = [e for e in envs if e != "LunarLander-v3" or _has_box2d()]
        args.seeds, args.episodes = 1, 2
    write = not (args.no_write or args.quick or args.smoke)
    seeds = list(range(args.seeds))
    load_before = os.getloadavg()
    results = {}
    for env_id in envs:
        bench = ENVS[env_id]
        total = SMOKE_STEPS if args.smoke else bench.total_timesteps
        extra = ["--smoke"] if args.smoke else []
        env_seconds = {kind: json.loads(run_worker(python, __file__, "--time-env", kind, "--worker-env", env_id, *extra))
                       for kind in ("ours", "sb3")}
        print(f"{env_id}: 100,000 random-action env steps, CPU s: "
              + ", ".join(f"{kind} {s:.2f}" for kind, s in env_seconds.items()), flush=True)
        flags = ["--worker-env", env_id, "--total-timesteps", str(total), "--episodes", str(args.episodes), *extra]
        cache = None if args.smoke else RUNS / env_id
        fingerprints = {learner: fingerprint(bench, learner, total, args.episodes, None) for learner in ("ours", "sb3")}
        runs = run_seeds(python, __file__, seeds, flags, jobs=args.jobs, label=f"{env_id} ", cache=cache,
                         fingerprints=fingerprints, resume=args.resume)
        results[env_id] = runs
        load = (load_before[0], os.getloadavg()[0])
        section = env_section(bench, runs, args, load, env_seconds, seeds)
        print(section, flush=True)
        if write:
            write_section(section, *section_markers(env_id), after=previous_marker(env_id))
    if write:  # the summary over envs, when every env has records of these seeds (from this call or earlier ones)
        for env_id in ENVS:
            if env_id not in results:
                kept = [kept_run(RUNS / env_id, learner, seed, fingerprint(ENVS[env_id], learner,
                                 ENVS[env_id].total_timesteps, args.episodes, None))
                        for seed in seeds for learner in ("ours", "sb3")]
                if None in kept:
                    print(f"no summary: {env_id} has no records of seeds {seeds[0]}-{seeds[-1]} with these settings")
                    break
                results[env_id] = kept
    if len(results) == len(ENVS) or not write:
        summary = summary_section({e: results[e] for e in ENVS if e in results},
                                  (load_before[0], os.getloadavg()[0]), seeds)
        print(summary)
        if write:
            write_section(summary, *section_markers(None))
    if write:
        print(f"wrote {RESULTS}")


def previous_marker(env_id: str) -> str:
    """Where a new section of ``env_id`` goes: after the section of the env before it, or after the summary."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    before = [section_markers(e)[1] for e in list(ENVS)[:list(ENVS).index(env_id)]]
    return next((m for m in reversed(before) if m in text), section_markers(None)[1])


def _has_box2d() -> bool:
    try:
        import Box2D  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
