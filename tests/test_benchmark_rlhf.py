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
    _check_curves(record, ("ours-default", "ours-reward", "ours-default-lowkl"))
    default, alternative, low_kl = (record["runs"][run][0] for run in ("ours-default", "ours-reward",
                                                                        "ours-default-lowkl"))
    assert (default["value_model"], default["learning_rate"]) == ("adapter", 3e-4)  # PPOConfig()'s defaults
    assert (alternative["value_model"], alternative["learning_rate"]) == ("reward", 2e-3)
    assert (low_kl["value_model"], low_kl["learning_rate"]) == ("adapter", 3e-4)  # the defaults but the KL weight
    assert (default["kl_coef"], alternative["kl_coef"], low_kl["kl_coef"]) == (0.05, 0.05, 0.02)
    assert "| 0 (SFT) |" in out
    assert RESULTS.read_text() == results  # smoke mode never writes


def test_benchmark_smoke_end_to_end(tmp_path):
    """The whole benchmark in smoke mode, where TRL 1.12 is installed (benchmarks/.venv-trl112)."""
    if not PEER_PYTHON.exists():
        pytest.skip("benchmarks/.venv-trl112 does not exist (python benchmarks/rlhf_vs_trl_ppo.py builds it)")
    results = RESULTS.read_text()
    out, record = _smoke(tmp_path)
    _check_curves(record, ("trl", "ours-default", "ours-reward", "ours-default-lowkl"))
    assert record["versions"]["trl"]["trl"] == "1.12.0"
    assert "## RLHF: the course's PPO trainer vs TRL's PPOTrainer" in out
    assert "(b) gold ≥ TRL's at every matched KL" in out and "**ours-frontier**" in out
    assert RESULTS.read_text() == results  # smoke mode never writes


def test_the_frontier_takes_the_low_kl_run_only_beyond_the_defaults_reach():
    """ours-frontier: on each seed, ours-default's gold where its curve reaches TRL's KL, else the low-KL run's;
    chosen by the KL, not by the higher gold; a KL that neither reaches on some seed is "not reached"."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import rlhf_vs_trl_ppo as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def curve(*points):
        return [{"episodes": 64 * i, "kl": kl, "gold": gold, "proxy": 0.0, "length": 8.0}
                for i, (kl, gold) in enumerate(points)]

    trl = [curve((0, 0.5), (1.0, 0.6), (2.0, 0.7), (4.0, 0.8))] * 2
    default = [curve((0, 0.5), (1.0, 0.65), (1.5, 0.7)), curve((0, 0.5), (2.0, 0.75))]
    low = [curve((0, 0.5), (1.0, 0.9), (3.0, 0.72)), curve((0, 0.5), (3.0, 0.77))]
    rows = bench.matched({"trl": trl, "ours-default": default, "ours-reward": default,
                          bench.LOW_KL_RUN: low})
    by_kl = {row["kl"]: row for row in rows}
    # KL 1: both seeds' default curves reach it: their golds (0.65; 0.625 halfway to KL 2), never the low-KL
    # run's higher 0.9
    assert by_kl[1.0][bench.FRONTIER][0] == pytest.approx((0.65 + 0.625) / 2)
    # KL 2: seed 0's default stops at 1.5, so the low-KL run's 0.9 + (0.72 - 0.9) / 2 = 0.81; seed 1's default: 0.75
    assert by_kl[2.0][bench.FRONTIER][0] == pytest.approx((0.81 + 0.75) / 2)
    assert by_kl[2.0][f"{bench.FRONTIER}_vs_trl"][0] == pytest.approx((0.81 + 0.75) / 2 - 0.7)
    # KL 4: no curve of ours reaches it
    assert by_kl[4.0][bench.FRONTIER] is None and by_kl[4.0][f"{bench.FRONTIER}_reached"] == 0
