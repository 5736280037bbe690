"""The course's notebook files: where they are, and how the course tooling reads and writes them.

Notebooks are read as plain JSON and written as Jupyter writes them (1-space indent, sorted
keys), so that a tool rewriting a notebook it did not change leaves the file byte for byte as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
NOTEBOOKS_DIR = ROOT / "notebooks"
"""The solution notebooks, ``NN_*.ipynb``: the course itself."""
EXERCISES_DIR = ROOT / "exercises"
"""The exercise notebooks generated from them (:mod:`rl_basics.course.exercise_notebooks`)."""


def solution_notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course's numbered notebooks."""
    return sorted(Path(directory).glob("[0-9][0-9]*.ipynb"))


def read_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def dumps_notebook(nb: dict) -> str:
    """Notebook JSON as Jupyter writes it (1-space indent, sorted keys), so rebuilding is byte-stable."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def cell_source(cell: dict) -> str:
    """A cell's source as one string (the JSON may hold a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def cell_tags(cell: dict) -> list[str]:
    """A cell's tags (``metadata.tags``)."""
    return list(cell.get("metadata", {}).get("tags", []))
