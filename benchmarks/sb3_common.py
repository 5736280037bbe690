"""What the benchmarks against Stable-Baselines3 share (``ppo_vs_sb3.py``, ``dqn_vs_sb3.py``).

- the peer's environment: ``benchmarks/.venv-sb3`` layered over the course's environment
  (:func:`ensure_sb3_venv`, :func:`sb3_python`);
- one training run in a worker process: :class:`Clock` and :class:`Tracker` (greedy evaluations
  every so many environment steps until the mean return first reaches :data:`THRESHOLD`, with the
  clocks paused while evaluating), :func:`warm_up`, :class:`SB3Actor`;
- orchestration: :func:`run_worker`, :func:`run_seeds` (each learner in a fresh process, the order
  alternating from seed to seed), :func:`time_env`;
- the report: :func:`versions`, :func:`machine`, :func:`comparison_table` (per-seed rows, median
  and mean), :func:`verdict` (reached, seed-by-seed counts, environment cost, the goal) and
  :func:`write_section` (a benchmark's own section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (the scripts' own folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-sb3"
RESULTS = HERE / "RESULTS.md"
THRESHOLD = 475.0


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
    probe = subprocess.run([str(python), "-c", "import stable_baselines3, Box2D"], capture_output=True)
    if probe.returncode != 0:
        print("installing benchmarks/requirements.txt into it", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements.txt")],
                       check=True)
    return python


def sb3_python(script: str, no_venv: bool) -> Path:
    """The interpreter that can import SB3: the running one, or (re-executing ``script`` there) the SB3 venv's."""
    python = Path(sys.executable)
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        if no_venv:
            sys.exit("stable-baselines3 is not importable; drop --no-venv to let the script make its own venv")
        python = ensure_sb3_venv()
        os.execv(str(python), [str(python), script, *sys.argv[1:]])
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
    """Evaluates the greedy policy on ``env_id`` every ``eval_every`` steps until the mean return first
    reaches ``threshold``."""

    def __init__(self, eval_every: int, n_episodes: int, env_id: str = "CartPole-v1", threshold: float = THRESHOLD):
        self.eval_every, self.n_episodes = eval_every, n_episodes
        self.env_id, self.threshold = env_id, threshold
        self.clock = Clock()
        self.last = 0
        self.first: dict | None = None
        self.evals: list[tuple[int, float]] = []

    def evaluate(self, actor) -> tuple[float, float]:
        from rl_basics.agents.rollout import evaluate

        return evaluate(actor, self.env_id, n_episodes=self.n_episodes, greedy=True, seed=10_000)

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
        if mean >= self.threshold:
            self.first = {"steps": env_steps, "seconds": wall, "cpu_seconds": cpu}


def warm_up() -> None:
    import torch

    torch.set_num_threads(1)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo


class SB3Actor:
    """``act(obs, greedy)`` over an SB3 policy, for rl_basics' evaluate. A model trained on a ``VecNormalize``
    env sees its observations normalised with the training statistics, as in rl-zoo's evaluation."""

    def __init__(self, model):
        self.model = model
        self.normalize = model.get_vec_normalize_env()

    def act(self, obs, greedy=True):
        import numpy as np

        obs = np.asarray(obs)
        if self.normalize is not None:
            obs = self.normalize.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=greedy)
        return actions


def worker(learner: str, seed: int, run: Callable, eval_every: int, n_episodes: int, env_id: str = "CartPole-v1",
           threshold: float = THRESHOLD) -> dict:
    """One training run, ``run(seed, tracker) -> (actor, env_steps)``, measured; a JSON-able record."""
    warm_up()
    tracker = Tracker(eval_every, n_episodes, env_id, threshold)
    actor, steps = run(seed, tracker)
    train_wall, train_cpu = tracker.clock.now()
    final_mean, final_std = tracker.evaluate(actor)
    return {"learner": learner, "seed": seed, "first": tracker.first, "final_return": final_mean,
            "final_std": final_std, "train_seconds": train_wall, "train_cpu_seconds": train_cpu,
            "env_steps": steps, "evals": tracker.evals}


def time_env(make_env: Callable, steps: int = 100_000, seed: int | None = 0) -> float:
    """CPU seconds to step the vector env ``make_env()`` ``steps`` times (summed over sub-envs) with random actions."""
    import numpy as np

    env = make_env()
    num_envs = env.num_envs
    space = getattr(env, "single_action_space", env.action_space)  # SB3's VecEnv: the one env's space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(num_envs)]) for _ in range(steps // num_envs)]
    env.reset(seed=seed) if seed is not None else env.reset()
    start = time.process_time()
    for action in actions:
        env.step(action)
    seconds = time.process_time() - start
    env.close()
    return seconds


# --------------------------------------------------------------------------- orchestration


def run_worker(python: Path, script: str, *flags: str) -> str:
    """Run ``script`` with ``flags`` in a fresh single-threaded process; its last line of output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([str(python), script, *flags], check=True, capture_output=True, text=True, env=env,
                         cwd=ROOT).stdout
    return out.strip().splitlines()[-1]


def kept_run(cache: Path, learner: str, seed: int, fingerprint: str) -> dict | None:
    """The record kept in ``cache`` of a run of ``learner`` on ``seed`` with this ``fingerprint``, if any."""
    path = cache / f"{learner}-{seed}.json"
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    return kept["run"] if kept["fingerprint"] == fingerprint else None


def run_seeds(python: Path, script: str, seeds: int | list[int], flags: list[str], jobs: int = 1,
              learners: tuple[str, ...] = ("ours", "sb3"), label: str = "", cache: Path | None = None,
              fingerprints: dict[str, str] | None = None, resume: bool = False) -> list[dict]:
    """Each learner on each seed (``0 .. seeds - 1`` when ``seeds`` is a number), each run a fresh ``--worker``
    process, alternating who goes first from seed to seed; ``jobs`` runs at a time (one core each).

    With a ``cache`` folder each run's record is kept there with ``fingerprints[learner]`` (a description of
    everything that defines the run); ``resume`` reuses a kept record whose fingerprint matches instead of
    running it again, so an interrupted benchmark continues where it stopped."""
    from concurrent.futures import ThreadPoolExecutor

    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    order = [(seed, learner) for i, seed in enumerate(seed_list)
             for learner in (learners if i % 2 == 0 else learners[::-1])]

    def one(seed: int, learner: str) -> dict:
        run = kept_run(cache, learner, seed, fingerprints[learner]) if cache is not None and resume else None
        if run is None:
            run = json.loads(run_worker(python, script, "--worker", learner, "--seed", str(seed), *flags))
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / f"{learner}-{seed}.json").write_text(
                    json.dumps({"fingerprint": fingerprints[learner], "run": run}))
        first = run["first"]
        print(f"{label}seed {seed} {learner:>4}: "
              + (f"threshold at {first['steps']:,} steps, {first['seconds']:.1f} s" if first else "never reached the threshold")
              + f"; final {run['final_return']:.1f}; full run {run['train_seconds']:.1f} s", flush=True)
        return run

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda job: one(*job), order))


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    """The versions that matter to the benchmarks (SB3's only where it is importable)."""
    import gymnasium
    import numpy
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "gymnasium": gymnasium.__version__,
             "numpy": numpy.__version__}
    try:
        import stable_baselines3
    except ImportError:
        return found
    return {**found, "stable-baselines3": stable_baselines3.__version__}


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {cpu_model()}, {os.cpu_count()} logical cores"


def median(values):
    """The median, counting None (a run that never reached the threshold) as infinitely many; None when that
    median is infinite, or when there are no values."""
    if not values:
        return None
    result = statistics.median(sorted(math.inf if v is None else v for v in values))
    return None if math.isinf(result) else result


def mean(values):
    return statistics.fmean(values) if values and None not in values else None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def beats(ours, sb3, factor: float) -> bool:
    """Whether a median of ours is at most ``factor`` times SB3's; a median that is None (the threshold not reached
    by most seeds) counts as larger than any reached one."""
    return ours is not None and (sb3 is None or ours <= factor * sb3)


def fmt(value, digits=1):
    return "—" if value is None else (f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}")


def comparison_table(runs: list[dict], threshold: float = THRESHOLD) -> tuple[list[str], dict, dict]:
    """The per-seed table (steps, wall and CPU seconds to the threshold, final return, full-run seconds) with
    its median and mean rows; returns ``(lines, columns, medians)`` for :func:`verdict`."""
    by = {(r["learner"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    t = f"{threshold:g}"
    lines = [
        f"| seed | steps to {t}: ours | SB3 | ratio | wall s to {t}: ours | SB3 | ratio | CPU s to {t}: ours | SB3 "
        "| final return: ours | SB3 | full-run wall s: ours | SB3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def first(r, key):
        return None if r["first"] is None else r["first"][key]

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
    return lines, cols, med


def verdict(cols: dict, med: dict, n_seeds: int, env_seconds: dict[str, float], variation: str,
            threshold: float = THRESHOLD, wall_goal: float = 0.5, final_goal: bool = False) -> list[str]:
    """The paragraphs under the table: how many seeds reached the threshold and the seed-by-seed counts
    (``variation`` says how much single seeds vary), what the environments cost (``env_seconds``: CPU seconds
    for 100,000 random-action steps of ``"ours"`` and ``"sb3"``, and optionally of gymnasium's ``"native"``
    vector env), and the goal: no more steps than SB3, at most ``wall_goal`` of its wall-clock time, and
    (``final_goal``) a final return no lower than SB3's, all on the medians over seeds."""
    pairs = [(o, s) for o, s in zip(cols["steps"]["ours"], cols["steps"]["sb3"]) if o is not None and s is not None]
    fewer_steps = sum(o <= s for o, s in pairs)
    time_pairs = [(o, s) for o, s in zip(cols["seconds"]["ours"], cols["seconds"]["sb3"]) if o is not None and s is not None]
    fast = sum(o <= wall_goal * s for o, s in time_pairs)
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
    goal_steps = beats(med["steps"]["ours"], med["steps"]["sb3"], 1.0)
    goal_time = beats(med["seconds"]["ours"], med["seconds"]["sb3"], wall_goal)
    t = f"{threshold:g}"
    native = ("" if "native" not in env_seconds else
              f" (gymnasium's numpy-vectorised env, which the benchmark does not use: {env_seconds['native']:.2f} s)")
    goals = [f"no more environment steps than SB3 — **{'met' if goal_steps else 'not met'}** (ratio {fmt(steps_ratio, 2)})",
             f"at most {wall_goal:g}x its wall-clock time — **{'met' if goal_time else 'not met'}** "
             f"(ratio {fmt(time_ratio, 2)})"]
    if final_goal:
        final = med["final"]
        goal_final = final["ours"] is not None and final["sb3"] is not None and final["ours"] >= final["sb3"]
        goals.append(f"a final return no lower than SB3's — **{'met' if goal_final else 'not met'}** "
                     f"({fmt(final['ours'])} vs {fmt(final['sb3'])})")
    return [
        "",
        f"Reached {t}: ours in {reached['ours']}/{n_seeds} seeds, SB3 in {reached['sb3']}/{n_seeds}. "
        "Ratios are ours / SB3 (below 1: ours needs less). Seed by seed, ours needed no more steps than SB3 in "
        f"{fewer_steps}/{len(pairs)} seeds and at most {wall_goal:g}x its wall-clock time in {fast}/{len(time_pairs)}; "
        f"{variation}, so the medians carry the comparison.",
        "",
        f"Environment cost: 100,000 random-action steps take {env_seconds['ours']:.2f} s of CPU in ours' env, "
        f"{env_seconds['sb3']:.2f} s in SB3's{native}. Over the median steps to {t} that is {fmt(env_ours, 2)} s for "
        f"ours and {fmt(env_sb3, 2)} s for SB3: the env implementations account for {fmt(env_share, 2)} s of the "
        f"{fmt(wall_gap, 1)} s gap between the median wall-clock times to {t}. Had ours paid SB3's env cost per "
        f"step, its wall-clock ratio would be {fmt(fair_ratio, 2)}.",
        "",
        "Goal (medians over seeds): " + "; ".join(goals) + ".",
    ]


def write_section(section: str, start: str, end: str, results: Path = RESULTS, after: str | None = None) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the old one; a new one goes
    right after the marker ``after`` when the file has it, else at the end."""
    text = results.read_text() if results.exists() else "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; do not edit by hand.\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + section.rstrip("\n") + tail
    elif after is not None and after in text:
        head, tail = text.split(after, 1)
        text = head + after + "\n\n" + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text)
