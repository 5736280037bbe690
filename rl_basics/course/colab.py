"""Google Colab: the set-up cell every course notebook starts with, and the "Open in Colab" links.

Run as ::

    python -m rl_basics.course.colab cell               # print the Colab set-up cell
    python -m rl_basics.course.colab cell --insert      # make it (or update it as) the first code cell of every notebook
    python -m rl_basics.course.colab links              # "Open in Colab" badges for the README's course map
    python -m rl_basics.course.colab links --exercises  # the same for the exercise notebooks
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rl_basics.course.notebook_files import cell_source, dumps_notebook, read_notebook, solution_notebooks

REPO_URL = "https://github.com/rl-course/rl-course"
"""The course repository (Colab links and the Colab set-up cell clone it)."""
BRANCH = "main"

COLAB_MARKER = "# Colab set-up"
COLAB_CELL = f'''{COLAB_MARKER}: on Google Colab, fetch and install the course (Colab's own torch is kept); elsewhere nothing happens.
import runpy, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run("[ -d /content/rl-course ] || git clone -q --depth 1 {REPO_URL} /content/rl-course", shell=True)
    runpy.run_path("/content/rl-course/rl_basics/course/colab_setup.py", run_name="__main__")'''
"""The first code cell of every notebook (the repository URL is :data:`REPO_URL`); what it runs after cloning
is :mod:`rl_basics.course.colab_setup`, a script the learner can read."""


def colab_url(notebook: Path | str, repo: str = REPO_URL, branch: str = BRANCH) -> str:
    """The "Open in Colab" address of a notebook path relative to the repository root."""
    owner_name = repo.rstrip("/").removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{Path(notebook).as_posix()}"


def colab_badge(notebook: Path | str) -> str:
    """Markdown for the "Open in Colab" badge of a notebook (relative path, e.g. ``notebooks/00_x.ipynb``)."""
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)})"


def insert_colab_cell(path: Path) -> bool:
    """Make :data:`COLAB_CELL` the first code cell of a notebook (insert, or update an older version).

    Returns whether the file changed.
    """
    nb = read_notebook(path)
    cells = nb["cells"]
    new = {"cell_type": "code", "execution_count": None, "id": "colab-setup", "metadata": {}, "outputs": [],
           "source": COLAB_CELL.splitlines(keepends=True)}
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    if code and cell_source(cells[code[0]]).startswith(COLAB_MARKER):
        if cell_source(cells[code[0]]) == COLAB_CELL:
            return False
        cells[code[0]]["source"] = new["source"]
    else:
        at = code[0] if code else len(cells)
        if any(c.get("id") == "colab-setup" for c in cells):
            new["id"] = "colab-setup-cell"
        cells.insert(at, new)
    Path(path).write_text(dumps_notebook(nb), encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_basics.course.colab", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_cell = sub.add_parser("cell", help="print the Colab set-up cell, or insert/update it in notebooks")
    p_cell.add_argument("--insert", action="store_true", help="make it the first code cell of each notebook")
    p_cell.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: notebooks/[0-9][0-9]*.ipynb)")
    p_links = sub.add_parser("links", help='print an "Open in Colab" badge per notebook (for the README)')
    p_links.add_argument("--exercises", action="store_true", help="link the exercise notebooks instead")
    args = parser.parse_args(argv)

    if args.command == "cell":
        if not args.insert:
            print(COLAB_CELL)
        for path in (args.notebooks or solution_notebooks()) if args.insert else []:
            print(f"{path}: {'updated' if insert_colab_cell(path) else 'already up to date'}")
    elif args.command == "links":
        for path in solution_notebooks():
            folder = "exercises" if args.exercises else "notebooks"
            print(f"| {path.name} | {colab_badge(f'{folder}/{path.name}')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
