"""Where the course's language-model data lives, and how cached artifacts are built safely.

Data directory, first match wins:

1. ``$RL_COURSE_DATA`` if set;
2. the repository's ``data/`` when the package runs from a checkout (editable install);
3. ``~/.cache/rl-course`` otherwise.

Inside it, ``tiny-world/`` holds the shipped artifacts (corpus, prompts, tokenizer, tiny
model) and ``cache/`` (gitignored) holds what is built at run time (SFT model, preference
data, reward model). :func:`cached_artifact` builds each of those at most once, even when
several processes (pytest-xdist workers, notebook kernels) ask for it at the same time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

_REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The course's data directory (created if missing)."""
    if os.environ.get("RL_COURSE_DATA"):
        path = Path(os.environ["RL_COURSE_DATA"]).expanduser()
    elif (_REPO_ROOT / "pyproject.toml").is_file() and (_REPO_ROOT / "data").is_dir():
        path = _REPO_ROOT / "data"
    else:
        path = Path.home() / ".cache" / "rl-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def tiny_world_dir() -> Path:
    """Shipped tiny-world artifacts: ``<data>/tiny-world``."""
    return data_dir() / "tiny-world"


def cache_dir() -> Path:
    """Artifacts built at run time: ``<data>/cache`` (created if missing)."""
    path = data_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_artifact(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first if it does not exist yet.

    ``build(tmp)`` must write the artifact into the empty directory ``tmp``. The directory is
    renamed to ``target`` only after ``build`` returns, so readers never see a half-written
    artifact, and a file lock next to ``target`` makes concurrent callers wait for the first
    builder instead of building the same thing twice (lock files live in ``<data>/cache/locks``).

    Args:
        target: the artifact's directory.
        build: writes the artifact into the directory it is given.

    Returns:
        ``target``.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    locks = cache_dir() / "locks"
    locks.mkdir(exist_ok=True)
    with FileLock(str(locks / f"{target.name}.lock")):
        if target.is_dir():  # another process built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the artifact is meant to be shared
        try:
            build(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def stage_preset(stage_dir: str | os.PathLike) -> str | None:
    """The preset (``"tiny"``, ``"phi-2"``) recorded in a stage directory's ``stage.json``, or None
    when the directory holds no such record (a model from elsewhere)."""
    import json

    record = Path(stage_dir) / "stage.json"
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get("preset")


COLAB_DRIVE = Path("/content/drive/MyDrive")
"""Where Google Drive is mounted on Colab (``from google.colab import drive; drive.mount("/content/drive")``)."""


def runs_dir() -> Path:
    """Where training runs keep their checkpoints, so that a re-run resumes instead of starting over.

    First match wins: ``$RL_COURSE_RUNS``; on Colab with Google Drive mounted,
    ``MyDrive/rl-course/runs`` (it survives a disconnect, the Colab disk does not); else
    ``<data>/runs``. Created if missing.
    """
    if os.environ.get("RL_COURSE_RUNS"):
        path = Path(os.environ["RL_COURSE_RUNS"]).expanduser()
    elif COLAB_DRIVE.is_dir():
        path = COLAB_DRIVE / "rl-course" / "runs"
    else:
        path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path
