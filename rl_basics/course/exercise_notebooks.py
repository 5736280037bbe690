"""Exercise notebooks: the exercise version of each solution notebook, with stubs for the solutions.

The course's notebooks are *solution* notebooks. In each chapter the learner writes a few key
pieces (the Bellman backup, the Q-learning update, GAE, the clipped PPO loss, the DPO loss, ...)
and a check cell right after each verifies the piece against the course's reference
implementation. The conventions (documented for authors in ``docs/exercises.md``):

- An **exercise cell** is a code cell tagged ``exercise``. It holds one or more top-level
  ``def`` statements (the solution). The exercise notebook keeps each signature and docstring
  and replaces the body with ``raise NotImplementedError(...)``. To leave scaffolding in place,
  wrap only the solution lines in ``# BEGIN SOLUTION`` / ``# END SOLUTION``: then just those
  lines are replaced. An exercise cell may use only what it defines or imports itself and the
  names in :data:`EXERCISE_GLOBALS` (``np``, ``math``, ``torch``, ``F``).
- The next tagged cell is its **check cell**, tagged ``check``: self-contained, it imports the
  check module and calls a check, e.g. ``from rl_basics import checks`` then
  ``checks.check_bellman_expectation_backup(bellman_expectation_backup)``.
- A cell tagged ``solution-only`` is dropped from the exercise notebook.

Run as ::

    python -m rl_basics.course.exercise_notebooks build     # notebooks/*.ipynb -> exercises/*.ipynb
    python -m rl_basics.course.exercise_notebooks build --out DIR NB.ipynb ...
    python -m rl_basics.course.exercise_notebooks list      # every (exercise, check) pair found
"""

from __future__ import annotations

import argparse
import ast
import copy
import math
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_basics.course.notebook_files import (
    EXERCISES_DIR,
    cell_source,
    cell_tags,
    dumps_notebook,
    read_notebook,
    solution_notebooks,
)

EXERCISE_TAG = "exercise"
"""Tag of a code cell whose function bodies (or ``# BEGIN/END SOLUTION`` regions) are the solution."""
CHECK_TAG = "check"
"""Tag of the code cell that checks the exercise cell before it."""
SOLUTION_ONLY_TAG = "solution-only"
"""Tag of a cell that is dropped from the exercise notebook (e.g. one that prints the solution's output)."""
BEGIN_SOLUTION = "# BEGIN SOLUTION"
END_SOLUTION = "# END SOLUTION"

EXERCISE_GLOBALS = ("np", "math", "torch", "F")
"""The names an exercise cell may use without importing them: ``numpy as np``, ``math``, ``torch``,
``torch.nn.functional as F``. Notebooks with exercises import these in an early cell."""


def exercise_namespace() -> dict[str, Any]:
    """A fresh namespace holding :data:`EXERCISE_GLOBALS`, as the notebooks' early import cell makes them."""
    import torch
    import torch.nn.functional as F

    return {"__name__": "__exercise__", "np": np, "math": math, "torch": torch, "F": F}


def _stub_message(name: str | None) -> str:
    what = f"the body of `{name}`" if name else "this part"
    return f"Exercise: write {what}, then run the check cell below."


def make_stub(source: str, where: str = "exercise cell") -> str:
    """The exercise version of an exercise cell's source.

    With ``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines, the lines between them (markers
    included) become one ``raise NotImplementedError(...)`` at the marker's indentation. Without
    markers, every top-level function keeps its decorators, signature and docstring, and its
    body becomes ``raise NotImplementedError(...)``. Everything else in the cell is kept.

    Raises:
        ValueError: naming ``where``, when the cell has nothing to stub, unbalanced markers, a
            function whose body starts on its ``def`` line, or the result is not valid Python.
    """
    lines = source.splitlines()
    if any(line.strip() in (BEGIN_SOLUTION, END_SOLUTION) for line in lines):
        stub = _stub_regions(lines, where)
    else:
        stub = _stub_functions(source, lines, where)
    text = "\n".join(stub)
    try:
        compile(text, where, "exec")
    except SyntaxError as exc:  # pragma: no cover - guarded by the construction above
        raise ValueError(f"{where}: the generated stub is not valid Python ({exc})") from exc
    return text


def _stub_regions(lines: list[str], where: str) -> list[str]:
    out: list[str] = []
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{where}: line {number}: {BEGIN_SOLUTION} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({_stub_message(None)!r})")
        elif stripped == END_SOLUTION:
            if not inside:
                raise ValueError(f"{where}: line {number}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return out


def _stub_functions(source: str, lines: list[str], where: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}: not valid Python ({exc})") from exc
    functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise ValueError(
            f"{where}: an exercise cell needs a top-level `def` (or {BEGIN_SOLUTION} / {END_SOLUTION} lines) to stub"
        )
    out = list(lines)
    for node in reversed(functions):  # from the bottom, so earlier line numbers stay valid
        first = node.body[0]
        if first.lineno == node.lineno:
            raise ValueError(f"{where}: put the body of `{node.name}` on its own lines, not on the `def` line")
        keep_until = node.body[0].lineno - 1  # the lines before the body (def, signature) are kept
        has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        if has_docstring:
            keep_until = first.end_lineno
        indent = " " * first.col_offset
        out[keep_until : node.end_lineno] = [f"{indent}raise NotImplementedError({_stub_message(node.name)!r})"]
    return out


@dataclass
class ExercisePair:
    """An exercise cell and its check cell in a notebook."""

    notebook: Path
    exercise_index: int
    check_index: int
    solution: str
    check: str
    names: list[str]

    @property
    def stub(self) -> str:
        return make_stub(self.solution, where=f"{self.notebook.name} cell {self.exercise_index}")

    @property
    def label(self) -> str:
        return f"{self.notebook.stem}:{self.exercise_index}:{'+'.join(self.names) or 'exercise'}"


def _defined_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def iter_exercises(path: Path | str) -> Iterator[ExercisePair]:
    """Every (exercise, check) pair of a notebook, in order.

    Raises:
        ValueError: an exercise cell with no check cell after it (before the next exercise), a
            check cell with no exercise before it, or a tag on a markdown cell.
    """
    path = Path(path)
    cells = read_notebook(path)["cells"]
    pending: int | None = None
    for i, cell in enumerate(cells):
        tags = cell_tags(cell)
        if (EXERCISE_TAG in tags or CHECK_TAG in tags) and cell["cell_type"] != "code":
            raise ValueError(f"{path.name} cell {i}: the tags {EXERCISE_TAG!r}/{CHECK_TAG!r} belong on code cells")
        if EXERCISE_TAG in tags:
            if pending is not None:
                raise ValueError(f"{path.name} cell {pending}: exercise cell without a check cell (tag {CHECK_TAG!r}) after it")
            pending = i
        elif CHECK_TAG in tags:
            if pending is None:
                raise ValueError(f"{path.name} cell {i}: check cell without an exercise cell (tag {EXERCISE_TAG!r}) before it")
            solution = cell_source(cells[pending])
            yield ExercisePair(path, pending, i, solution, cell_source(cell), _defined_names(solution))
            pending = None
    if pending is not None:
        raise ValueError(f"{path.name} cell {pending}: exercise cell without a check cell (tag {CHECK_TAG!r}) after it")


def _header_cell(source_name: str) -> dict:
    text = (
        f"> **Exercise version** of [`notebooks/{source_name}`](../notebooks/{source_name}), generated by "
        "`python -m rl_basics.course.exercise_notebooks build` (do not edit it by hand: edit the solution notebook and rebuild).\n"
        ">\n"
        "> In each **exercise** cell, replace `raise NotImplementedError(...)` with your code, then run the "
        "**check** cell right after it: it compares your function with the course's reference implementation "
        "on fresh random inputs and edge cases, and says what is wrong (shape, sign, an off-by-one at an "
        "episode end, a forgotten discount or mask...). Stuck? The solution notebook has the answer at the same place."
    )
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def exercise_notebook(nb: dict, source_name: str) -> dict:
    """The exercise version of a solution notebook (a new dict; ``nb`` is not modified).

    Exercise cells are stubbed (:func:`make_stub`), ``solution-only`` cells dropped, outputs and
    execution counts cleared, and a note inserted after the first cell (the learning goals).
    """
    out = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(out["cells"]):
        tags = cell_tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if EXERCISE_TAG in tags:
                cell["source"] = make_stub(cell_source(cell), where=f"{source_name} cell {i}")
        cell.pop("id", None)  # ids are regenerated below: stable, and unique after cells were dropped
        cells.append(cell)
    cells.insert(min(1, len(cells)), _header_cell(source_name))
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    out["cells"] = cells
    out.setdefault("nbformat", 4)
    out["nbformat_minor"] = max(out.get("nbformat_minor", 5), 5)
    return out


def build(notebooks: Sequence[Path] | None = None, out: Path = EXERCISES_DIR) -> list[Path]:
    """Write the exercise version of each notebook (default: every course notebook) to ``out``."""
    notebooks = solution_notebooks() if notebooks is None else [Path(p) for p in notebooks]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        list(iter_exercises(path))  # validate the tags first, with a clear error
        target = out / path.name
        target.write_text(dumps_notebook(exercise_notebook(read_notebook(path), path.name)), encoding="utf-8")
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_basics.course.exercise_notebooks",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="write the exercise notebooks (stubs instead of solutions)")
    p_build.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: notebooks/[0-9][0-9]*.ipynb)")
    p_build.add_argument("--out", type=Path, default=EXERCISES_DIR, help="output folder (default: exercises/)")
    p_list = sub.add_parser("list", help="list every (exercise, check) pair")
    p_list.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)

    if args.command == "build":
        for path in build(args.notebooks or None, args.out):
            n = sum(1 for c in read_notebook(path)["cells"] if EXERCISE_TAG in cell_tags(c))
            print(f"{path}  ({n} exercise{'s' if n != 1 else ''})")
    elif args.command == "list":
        for path in args.notebooks or solution_notebooks():
            for pair in iter_exercises(path):
                check = re.search(r"check_\w+", pair.check)
                print(f"{path.name}  cell {pair.exercise_index:>3}  {', '.join(pair.names) or '(region)'}  ->  "
                      f"{check.group(0) if check else pair.check.strip().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
