"""The RLHF pipeline as an MLRun job (``rlhf/mlrun_job.py``).

The handler is tested everywhere with a stand-in MLRun context and a stand-in pipeline (the
real pipeline is tested by the RLHF tests). With ``mlrun`` installed (it is an optional
extra, not in requirements.txt), the function definition from ``docs/iguazio.md`` is also
built and run locally through MLRun itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlhf.cli
from rlhf import mlrun_job


def fake_pipeline(calls):
    """A stand-in for rlhf.cli.main that writes what the real one writes (metrics.csv, config.json)."""

    def main(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--output-dir") + 1]) / "ppo"
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.csv").write_text("step,reward/proxy,reward/gold,kl/k1\n1,0.1,0.2,0.01\n2,0.3,0.25,nan\n")
        (out / "config.json").write_text(json.dumps({"kl_coef": 0.05}))
        return 0

    return main


class FakeContext:
    def __init__(self):
        self.results, self.artifacts = {}, {}
        self.logger = type("Logger", (), {"info": staticmethod(lambda message: None)})()

    def log_result(self, key, value):
        self.results[key] = value

    def log_artifact(self, key, local_path):
        self.artifacts[key] = local_path


def test_handler_runs_the_cli_and_logs_the_last_metrics(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(rlhf.cli, "main", fake_pipeline(calls))
    context = FakeContext()
    status = mlrun_job.rlhf_pipeline(context, args="--steps 2 --set kl_coef=0.05", output_dir=str(tmp_path / "run"))
    assert status == 0
    assert calls == [["--steps", "2", "--set", "kl_coef=0.05", "--output-dir", str(tmp_path / "run")]]
    assert context.results == {"step": 2.0, "reward_proxy": 0.3, "reward_gold": 0.25}  # NaN is not a result
    assert set(context.artifacts) == {"metrics", "config"}


def test_function_definition_runs_locally_through_mlrun(monkeypatch, tmp_path):
    pytest.importorskip("mlrun", reason="mlrun is an optional extra (pip install mlrun); not installed")
    calls = []
    monkeypatch.setattr(rlhf.cli, "main", fake_pipeline(calls))
    monkeypatch.chdir(tmp_path)
    fn = mlrun_job.make_function(gpus=0)
    assert fn.kind == "job" and fn.spec.default_handler == "rlhf_pipeline"
    assert fn.spec.build.base_image == "mlrun/mlrun" and fn.spec.build.requirements == [mlrun_job.COURSE_REQUIREMENT]
    gpu = mlrun_job.make_function(gpus=1)
    assert gpu.spec.build.base_image == "mlrun/mlrun-gpu" and gpu.spec.resources["limits"]["nvidia.com/gpu"] == 1
    run = fn.run(params={"args": "--steps 2", "output_dir": str(tmp_path / "run")}, local=True)
    assert run.state() == "completed", run.status.error
    assert calls and calls[0][:2] == ["--steps", "2"]
    assert run.status.results["reward_gold"] == pytest.approx(0.25)
