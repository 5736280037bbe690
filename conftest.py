"""Test-session set-up shared by the unit tests and the notebooks run by nbval.

Notebook kernels are child processes, so everything set in ``os.environ`` here
reaches them too.
"""

import os

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
