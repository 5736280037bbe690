"""The RLHF pipeline (:mod:`rlhf.cli`) as an MLRun job, to move training off the notebook server.

On Iguazio (or any MLRun cluster) a notebook defines the job once and runs it on a GPU or
CPU node; MLRun records the run, its final metrics (as results) and ``metrics.csv`` /
``config.json`` (as artifacts). ``mlrun`` is optional and only this module uses it: ``pip install
"mlrun==<your cluster's MLRun version>"`` next to the course (it installs beside the course's
pinned stack; see ``docs/iguazio.md``). ::

    from rlhf.mlrun_job import make_function

    fn = make_function(gpus=1)                       # image mlrun/mlrun-gpu, the course installed on top
    project.build_function(fn)                       # once: builds the image with the course in it
    run = fn.run(params={"args": "--model microsoft/phi-2 --steps 200"}, local=False)
    run.outputs                                      # the last PPO step's metrics, and the artifacts

``fn.run(..., local=True)`` runs the same handler in the notebook's own process (no cluster
needed), which is how the tests exercise it. ``docs/iguazio.md`` has the complete recipe,
including the plain ``mlrun.code_to_function`` call this helper makes.
"""

from __future__ import annotations

import csv
import math
import shlex
from pathlib import Path

COURSE_REQUIREMENT = "rl-course @ git+https://github.com/rl-course/rl-course@main"
"""What the job's image installs on top of the MLRun base image (the course and its dependencies;
the base image's own torch is kept, as the course only needs ``torch>=2.4``)."""


def rlhf_pipeline(context, args: str = "", output_dir: str = "runs/rlhf") -> int:
    """MLRun handler: run ``rlhf-pipeline ARGS --output-dir OUTPUT_DIR`` and log what it produced.

    Args:
        context: the MLRun context (``log_result``, ``log_artifact``, ``logger``); not annotated, as
            MLRun resolves a handler's annotations and injects the context by name.
        args: the command line of :func:`rlhf.cli.main`, e.g. ``"--model microsoft/phi-2 --steps 200"``.
        output_dir: where the pipeline writes (``<output_dir>/ppo/metrics.csv`` and checkpoints);
            on Iguazio a path under ``/User`` or ``/v3io`` keeps it after the job's pod ends.

    Returns:
        The command's exit status (0). The last PPO step's metrics become MLRun results (``/`` in
        names becomes ``_``: ``reward/gold`` -> ``reward_gold``).
    """
    from rlhf.cli import main

    argv = [*shlex.split(args), "--output-dir", output_dir]
    context.logger.info(f"rlhf-pipeline {shlex.join(argv)}")
    status = main(argv)
    ppo = Path(output_dir) / "ppo"
    metrics = ppo / "metrics.csv"
    if metrics.exists():
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            for key, value in rows[-1].items():
                number = _number(value)
                if number is not None:
                    context.log_result(key.replace("/", "_"), number)
        context.log_artifact("metrics", local_path=str(metrics))
    if (ppo / "config.json").exists():
        context.log_artifact("config", local_path=str(ppo / "config.json"))
    return status


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def make_function(
    name: str = "rlhf-pipeline",
    image: str | None = None,
    gpus: int = 0,
    requirements: list[str] | None = None,
    project: str = "",
):
    """The MLRun job function that runs :func:`rlhf_pipeline` (needs ``mlrun``).

    Args:
        name: the function's name in the MLRun project.
        image: the base image; default ``mlrun/mlrun-gpu`` when ``gpus`` else ``mlrun/mlrun``.
        gpus: GPUs to request for the job's pod (0: a CPU node).
        requirements: pip requirements installed when the image is built (default: the course,
            :data:`COURSE_REQUIREMENT`).
        project: the MLRun project name (default: the current project).
    """
    import mlrun

    fn = mlrun.code_to_function(
        name=name,
        project=project,
        filename=__file__,
        handler="rlhf_pipeline",
        kind="job",
        image=image or ("mlrun/mlrun-gpu" if gpus else "mlrun/mlrun"),
        requirements=requirements if requirements is not None else [COURSE_REQUIREMENT],
    )
    if gpus:
        fn.with_limits(gpus=gpus)
    return fn
