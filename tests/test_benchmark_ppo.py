"""The PPO benchmark against Stable-Baselines3 and the sweeps behind the presets, in smoke mode.

``benchmarks/ppo_vs_sb3.py`` and ``benchmarks/ppo_presets_sweep.py`` write ``benchmarks/RESULTS.md`` from full
runs (tens of minutes); here every piece runs once on tiny budgets. The course's side needs no
Stable-Baselines3; the end-to-end run is skipped where ``benchmarks/.venv-sb3`` does not exist (as in CI).
"""

from __future__ import annotations

import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rl_basics.agents import ppo

ROOT = Path(__file__).resolve().parents[1]
SB3_PYTHON = ROOT / "benchmarks" / ".venv-sb3" / "bin" / "python"


def worker(env_id: str) -> dict:
    cmd = [sys.executable, "benchmarks/ppo_vs_sb3.py", "--smoke", "--worker", "ours", "--worker-env", env_id,
           "--seed", "0", "--total-timesteps", "2048", "--episodes", "2"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_benchmark_worker_trains_the_preset_and_evaluates_on_schedule():
    """A continuous-action env through the worker (the sweep's smoke below runs CartPole's)."""
    record = worker("Pendulum-v1")
    assert record["learner"] == "ours" and record["env_steps"] >= 2048
    steps = [s for s, _ in record["evals"]]
    assert steps and all(b - a >= 1024 for a, b in zip(steps, steps[1:]))  # the smoke interval: 1,024 steps
    assert -2000 <= record["final_return"] <= 0 and record["train_cpu_seconds"] > 0


def test_sweep_smoke_reports_its_candidates_each_with_its_own_config():
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    out = subprocess.run([sys.executable, "benchmarks/ppo_presets_sweep.py", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    table = [line for line in out.splitlines() if line.startswith("| ") and "candidate" not in line]
    assert len(table) == 2 and sum("(pick)" in line for line in table) == 1
    finals = [line.split("|")[-2].strip() for line in table]  # 15 vs 20 epochs: the overrides reach the run
    assert finals[0] != finals[1], table
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == results  # smoke mode never writes


def test_every_benchmarked_env_has_a_preset_that_states_its_sweep():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from ppo_presets_sweep import BASE, CANDIDATES
        from ppo_vs_sb3 import ENVS
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert set(ENVS) == set(ppo.PRESETS) == set(CANDIDATES) == set(BASE)
    for env_id, preset in ppo.PRESETS.items():
        assert preset.total_timesteps == ENVS[env_id].total_timesteps, env_id  # the benchmark runs the preset as is
    source = inspect.getsource(ppo)
    for name in ("ACROBOT", "PENDULUM", "LUNAR_LANDER"):  # each preset's docstring names the sweep behind it
        docstring = re.search(rf"^{name} = PPOConfig\(.*?\n\)\n\"\"\"(.*?)\"\"\"", source, re.S | re.M).group(1)
        assert "benchmarks/ppo_presets_sweep.py" in docstring, name
    assert "benchmarks/ppo_presets_sweep.py --env CartPole-v1" in ppo.PPOConfig.__doc__  # CartPole's preset: the defaults


def test_runs_that_never_reached_the_threshold_count_as_slowest():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from sb3_common import beats, median
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert median([1, 2, None]) == 2
    assert median([1, None, None]) is None
    assert median([1, 3]) == 2 and median([]) is None
    assert not math.isinf(median([5, None, 3]))
    # the goals: a median that never reached the threshold is slower than any that did
    assert beats(1, None, 1.0) and not beats(None, 1, 1.0) and not beats(None, None, 1.0)
    assert beats(4, 10, 0.4) and not beats(5, 10, 0.4)


def test_benchmark_smoke_end_to_end():
    """The whole benchmark in smoke mode, where Stable-Baselines3 is installed (benchmarks/.venv-sb3)."""
    if not SB3_PYTHON.exists():
        pytest.skip("benchmarks/.venv-sb3 does not exist (python benchmarks/ppo_vs_sb3.py creates it)")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    out = subprocess.run([str(SB3_PYTHON), "benchmarks/ppo_vs_sb3.py", "--smoke", "--env", "CartPole-v1",
                          "--env", "Pendulum-v1"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         check=True).stdout
    assert "### CartPole-v1: PPO vs Stable-Baselines3" in out and "### Pendulum-v1: PPO vs Stable-Baselines3" in out
    assert "## PPO vs Stable-Baselines3 on four environments" in out and "| Pendulum-v1 | -200 |" in out
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == results  # smoke mode never writes
