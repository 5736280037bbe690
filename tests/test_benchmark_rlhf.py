"""Smoke tests of ``benchmarks/rlhf_vs_trl_ppo.py`` (the course's PPO-RLHF trainer vs TRL 1.12's PPOTrainer)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "rlhf_vs_trl_ppo.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
PEER_PYTHON = ROOT / "benchmarks" / ".venv-trl112" / "bin" / "python"


def _smoke(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    """Run the benchmark's smoke mode; returns its stdout and the measurements it saved as JSON."""
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(tmp_path / "runs.json"),
                          "--plot", str(tmp_path / "frontier.png"), *extra],
                         cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                         timeout=600, check=True).stdout
    assert (tmp_path / "frontier.png").stat().st_size > 0
    return out, json.loads((tmp_path / "runs.json").read_text())


def _check_curves(record: dict, runs: tuple[str, ...]) -> None:
    assert set(record["curves"]) == set(runs)
    for run in runs:
        (train,) = record["runs"][run]  # one seed
        assert train["episodes"] == 16 and train["episodes_per_second"] > 0 and train["episodes_per_cpu_second"] > 0
        assert [c["step"] for c in train["checkpoints"]] == [1, 2]  # a checkpoint every PPO step
        (curve,) = record["curves"][run]
        assert [p["episodes"] for p in curve] == [0, 8, 16]
        assert abs(curve[0]["kl"]) < 1e-3  # the first point is the SFT policy itself (KL 0 up to rounding)
        assert all(math.isfinite(p["kl"]) and 0 <= p["gold"] <= 1 for p in curve)
        assert all(p["length"] >= 1 for p in curve)


def test_benchmark_smoke_course_side(tmp_path):
    """The course's two configurations in smoke mode, without the peer environment (as in CI)."""
    results = RESULTS.read_text()
    out, record = _smoke(tmp_path, "--no-trl")
    assert "trl" not in record["versions"] and "building the peer environment" not in out
    _check_curves(record, ("ours-default", "ours-reward"))
    default, alternative = (record["runs"][run][0] for run in ("ours-default", "ours-reward"))
    assert (default["value_model"], default["learning_rate"]) == ("adapter", 3e-4)  # PPOConfig()'s defaults
    assert (alternative["value_model"], alternative["learning_rate"]) == ("reward", 2e-3)
    assert "| 0 (SFT) |" in out
    assert RESULTS.read_text() == results  # smoke mode never writes


def test_benchmark_smoke_end_to_end(tmp_path):
    """The whole benchmark in smoke mode, where TRL 1.12 is installed (benchmarks/.venv-trl112)."""
    if not PEER_PYTHON.exists():
        pytest.skip("benchmarks/.venv-trl112 does not exist (python benchmarks/rlhf_vs_trl_ppo.py builds it)")
    results = RESULTS.read_text()
    out, record = _smoke(tmp_path)
    _check_curves(record, ("trl", "ours-default", "ours-reward"))
    assert record["versions"]["trl"]["trl"] == "1.12.0"
    assert "## RLHF: the course's PPO trainer vs TRL's PPOTrainer" in out
    assert "(b) gold ≥ TRL's at every matched KL" in out
    assert RESULTS.read_text() == results  # smoke mode never writes
