"""Test-session set-up shared by the unit tests and the notebooks run by nbval.

Notebook kernels are child processes, so everything set in ``os.environ`` here
reaches them too.
"""

import os
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
os.environ["RL_COURSE_RUNS"] = tempfile.mkdtemp(prefix="rl-course-runs-")


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
