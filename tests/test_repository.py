"""Rules the course keeps about itself: clean notebooks, a consistent test command, notebook structure."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no course notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path):
    """Outputs and execution counts are cleared: readable diffs and nothing stale."""
    nb = json.loads(path.read_text())
    dirty = [
        i for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_goals_and_ends_with_summary(path):
    nb = json.loads(path.read_text())
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert markdown, f"{path.name} has no markdown cells"
    first = "".join(nb["cells"][0]["source"]).lower()
    assert nb["cells"][0]["cell_type"] == "markdown" and "learning goals" in first, (
        f"{path.name}: the first cell must be markdown stating the learning goals"
    )
    title = first.splitlines()[0]
    assert re.match(rf"# {path.name[:2]} — \S", title), (
        f"{path.name}: the title must be '# {path.name[:2]} — <chapter name>' (its number is its file's), got {title!r}"
    )
    tail = " ".join(markdown[-2:]).lower()
    assert "summary" in tail and "next" in tail, f"{path.name}: the notebook must end with a summary and what comes next"


def _readme_command(marker: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```(?:bash|sh)?\s*\n(.+?)\n```", readme, re.S)
    assert match, f"README.md must show a command in a code block right after <!-- {marker} -->"
    return match.group(1).strip()


@pytest.mark.parametrize("marker", ["setup-command", "test-command", "second-torch-command"])
def test_ci_runs_the_readme_commands_verbatim(marker):
    command = _readme_command(marker)
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci.splitlines(), f"`.ci/run` must run the README's {marker} verbatim: {command!r}"


def test_ci_installs_nothing_the_readme_does_not_show():
    """Every line of `.ci/run` that runs pip is one of the README's commands: a green CI must not
    rest on an install step a newcomer never sees."""
    readme_commands = {_readme_command(m) for m in ("setup-command", "test-command", "second-torch-command")}
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    installs = [line for line in ci_lines if not line.startswith("#") and re.search(r"\bpip\b", line)]
    assert installs and all(line in readme_commands for line in installs), installs


def test_every_notebook_is_in_the_course_map():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if p.name not in readme]
    assert not missing, f"README course map lacks {missing}"


def _import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, top-level and inside functions (lazy) alike."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                    module = ".".join(parts[:keep] + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                deps.add(module)
                deps.update(f"{module}.{alias.name}" for alias in node.names)
        graph[".".join(parts)] = deps
    return {module: {d for d in deps if d in graph and d != module} for module, deps in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", ["rl_basics", "rlhf"])
def test_packages_have_no_import_cycles(package):
    """Layered packages: no module imports, even lazily inside a function, one that imports it back."""
    graph = _import_graph(package)
    assert len(graph) > 5
    assert _cycles(graph) == [], f"import cycles in {package}: {_cycles(graph)}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
