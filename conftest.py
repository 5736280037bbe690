"""Test-session set-up shared by the unit tests and the notebooks run by nbval.

Notebook kernels are child processes, so everything set in ``os.environ`` here
reaches them too.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# No hub downloads at test time: every model and dataset comes from the offline tiny world.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

# With pytest-xdist, each worker (and the notebook kernel it starts) gets its share
# of the cores instead of every process spawning one thread per core.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

# The tests' own Hugging Face cache, where the offline phi-2 stand-in is installed (rlhf.phi2_standin):
# never the user's cache, which may hold the real microsoft/phi-2.
os.environ["HF_HUB_CACHE"] = str(Path(__file__).resolve().parent / "data" / "cache" / "hf-hub")
# Training runs checkpoint under RL_COURSE_RUNS and resume from it: a fresh folder per test process, so a
# notebook never resumes from a run left behind by older code.
RUNS = os.environ["RL_COURSE_RUNS"] = tempfile.mkdtemp(prefix="rl-course-runs-")


def pytest_unconfigure(config):
    shutil.rmtree(RUNS, ignore_errors=True)  # this process's runs folder: nothing outlives the tests


@pytest.fixture(scope="session")
def phi2_standin() -> Path:
    """The offline stand-in for microsoft/phi-2, installed in the tests' hub cache (once, whichever
    xdist worker gets there first); returns its snapshot directory."""
    from filelock import FileLock

    from rlhf import phi2_standin as standin

    cache = Path(os.environ["HF_HUB_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".phi2-standin.lock")):
        return standin.install()


# pytest-xdist (`-n 2`, `--dist loadfile`) hands out whole files in this order (pyproject.toml sets
# --no-loadscope-reorder, which would otherwise sort them by their number of tests). The first two build the
# two sets of cached RLHF stages side by side, one per worker, rather than one worker waiting on the other's
# build: the tiny world's in the tests of those stages (about 100 s on one core), which every RLHF notebook then
# reuses as a learner who worked through chapters 9-11 does; the phi-2 stand-in's in its notebooks' tests. The
# longest go next, so that the short ones fill the gaps at the end instead of one long file running alone.
# Files not listed keep their collection order, after these.
LONGEST_FIRST = [
    "tests/test_sft_reward.py",  # builds (and tests) the tiny world's SFT / preference / reward stages
    "tests/test_phi2_notebooks.py",  # builds the phi-2 stand-in's stages
    "notebooks/12_beyond_ppo.ipynb",
    "notebooks/11_ppo_rlhf.ipynb",
    "notebooks/05_function_approximation_and_dqn.ipynb",
    "notebooks/06_policy_gradients.ipynb",
    "tests/test_phi2_path.py",
    "notebooks/10_reward_modeling.ipynb",
    "notebooks/07_actor_critic.ipynb",
    "tests/test_rlhf_accelerate.py",
    "notebooks/09_language_models_as_policies.ipynb",
    "notebooks/04_temporal_difference.ipynb",
    "notebooks/08_ppo.ipynb",
    "notebooks/03_monte_carlo.ipynb",
]


NOTEBOOK_OUTPUT_TIMEOUT = 60
"""Seconds nbval waits for a cell's next output message after the cell finished (nbval's own is 5 s: on a machine
busy with the other worker, a cell that finished fine was reported as a timeout while its figure was still on its way)."""


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items[:] = sorted(items, key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable sort
    for item in items:
        if hasattr(item, "output_timeout"):  # an nbval notebook cell
            item.output_timeout = NOTEBOOK_OUTPUT_TIMEOUT
