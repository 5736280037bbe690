"""Exercises: the machinery behind every check cell, and the exercise-notebook generator.

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

Part 1, for check authors (:mod:`rl_basics.checks`, :mod:`rlhf.checks`): :func:`check_function`
calls the learner's function and the reference on the same fresh, seeded random inputs and on
edge cases, and raises :class:`CheckFailed` (an ``AssertionError``) whose message says *what is
wrong*: a wrong shape (transposed? reduced over the wrong axis?), NaN, a flipped sign, a constant
factor, a returned ``None``, an input changed in place, a cut gradient, or one of the check's
own known mistakes (:class:`Mistake`: a variant of the reference with the bug built in, e.g.
"ignores the terminated flag", whose output the learner's matches).

Part 2, for authors and learners: the generator, run as ::

    python -m rl_basics.exercises build               # notebooks/*.ipynb -> exercises/*.ipynb
    python -m rl_basics.exercises build --out DIR NB.ipynb ...
    python -m rl_basics.exercises list                # every (exercise, check) pair found
    python -m rl_basics.exercises colab-cell [--insert]  # print (or insert/update) the Colab set-up cell
    python -m rl_basics.exercises links               # "Open in Colab" badges for the README's course map
    python -m rl_basics.exercises insert NB.ipynb "Q-learning update" --after 12   # a catalogue exercise
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import inspect
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------------------------
# Part 1: checking a learner's function against a reference
# ----------------------------------------------------------------------------------------------


class CheckFailed(AssertionError):
    """Raised by a check: the message says what is wrong with the learner's function and how to fix it."""


@dataclass
class Case:
    """One set of inputs for the function under check.

    ``args`` are passed positionally (the learner may name parameters as they like); ``name``
    describes the inputs in the failure message, e.g. ``"edge case: the episode ends at the last step"``.
    """

    name: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass
class Mistake:
    """A known wrong way to write the function: ``fn`` is the reference with the bug built in.

    When the learner's output is wrong and matches ``fn``'s output on the same inputs (where
    ``fn`` differs from the correct answer), the check reports ``hint``.
    """

    hint: str
    fn: Callable[..., Any]


def learner_check(check: Callable) -> Callable:
    """Decorator of the ``check_*`` functions: a failure reaches the notebook as a short traceback.

    The :class:`CheckFailed` is raised anew from the check itself, so Jupyter shows the check
    cell's line and the message, not the frames of the checking machinery (an exception the
    learner's own function raised stays attached as the cause, with its traceback).
    """

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True
        try:
            return check(*args, **kwargs)
        except CheckFailed as exc:
            raise CheckFailed(str(exc)) from exc.__cause__

    return wrapper


def fresh_seed() -> int:
    """A new random seed, different on every call (checks report it so a failure can be reproduced)."""
    return int(np.random.SeedSequence().entropy % (2**31))


def _torch():
    """torch if it is already imported (checks of tabular exercises never import it)."""
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _copy(x: Any) -> Any:
    if _is_tensor(x):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (tuple, list)):
        return type(x)(_copy(v) for v in x)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    try:
        return copy.deepcopy(x)
    except Exception:  # pragma: no cover - objects that cannot be copied are passed as they are
        return x


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two inputs (used to detect in-place modification)."""
    if _is_tensor(a) or _is_tensor(b):
        return _is_tensor(a) and _is_tensor(b) and a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all())
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return True


class _Unconvertible(Exception):
    pass


def _normalise(x: Any, like: Any) -> Any:
    """Turn an output into float64 numpy arrays, following the structure of the expected output ``like``."""
    if isinstance(like, tuple):
        if not isinstance(x, (tuple, list)):
            raise _Unconvertible(f"return a tuple of {len(like)} values, like the reference; you returned {_describe(x)}")
        if len(x) != len(like):
            raise _Unconvertible(f"return {len(like)} values; you returned {len(x)}")
        return tuple(_normalise(v, w) for v, w in zip(x, like))
    if isinstance(like, dict):
        if not isinstance(x, dict):
            raise _Unconvertible(f"return a dict (like the reference); you returned {_describe(x)}")
        return {k: _normalise(v, like.get(k, 0.0)) for k, v in x.items()}
    if x is None:
        raise _Unconvertible("your function returned None: did you forget the `return` statement?")
    if _is_tensor(x):
        return x.detach().cpu().to(_torch().float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _Unconvertible(f"your function returned {_describe(x)}, which is not a number or an array ({exc})") from None


def _describe(x: Any) -> str:
    if _is_tensor(x) or isinstance(x, np.ndarray):
        return f"a {type(x).__name__} of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _fmt(a: np.ndarray, limit: int = 12) -> str:
    flat = np.asarray(a).ravel()
    text = np.array2string(flat[:limit], precision=4, suppress_small=True, max_line_width=100)
    more = f" ... ({flat.size} values)" if flat.size > limit else ""
    shape = f" shape {a.shape}" if np.ndim(a) > 1 else ""
    return text + more + shape


def _shape_hint(expected: tuple, got: tuple) -> str:
    hint = f"wrong shape: expected {expected}, got {got}."
    if len(expected) == len(got) and got == tuple(reversed(expected)) and expected != got:
        hint += " It looks transposed: check which axis is time and which is the batch."
    elif len(got) < len(expected):
        hint += " You reduced (summed or averaged) over an axis that should stay."
    elif len(got) > len(expected):
        hint += " An axis is left over: did you forget to sum or average, or did broadcasting add one?"
    elif sorted(got) != sorted(expected):
        hint += " Check for an off-by-one in a slice or a missing element at the end."
    return hint


def _compare(expected: Any, got: Any, atol: float, rtol: float, where: str = "") -> str | None:
    """None when ``got`` matches ``expected``; otherwise a sentence saying how it differs."""
    if isinstance(expected, tuple):
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = _compare(e, g, atol, rtol, where=f"{where} output {i} of the returned tuple:".strip())
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        missing = sorted(set(expected) - set(got), key=repr)
        extra = sorted(set(got) - set(expected), key=repr)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:10]}")
            if extra:
                parts.append(f"unexpected keys {extra[:10]}")
            return f"{where or 'the result'} has " + " and ".join(parts)
        for k in expected:
            problem = _compare(expected[k], got[k], atol, rtol, where=f"{where} the value for key {k!r}:".strip())
            if problem:
                return problem
        return None
    label = f"{where} " if where else ""
    if np.shape(got) != np.shape(expected):
        return label + _shape_hint(np.shape(expected), np.shape(got))
    finite_expected = np.isfinite(expected)
    if (finite_expected & ~np.isfinite(got)).any():
        return (
            label + "contains NaN or inf where the answer is finite: a division by zero, or a numerically "
            "unstable formula (e.g. log(sigmoid(x)) underflows for large |x|: use logsigmoid; exp of a large "
            "number overflows)."
        )
    if not np.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True):
        bad = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
        if np.ndim(bad) == 0:
            return f"{label}wrong value"
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if np.ndim(bad) else ()
        at = f" (first at index {first})" if first else ""
        return f"{label}wrong values in {int(np.sum(bad))} of {np.size(bad)} entries{at}"
    return None


def _scale_of(expected: Any, got: Any) -> float | None:
    """The constant c with got == c * expected, when there is one (c != 1)."""
    if isinstance(expected, (tuple, dict)):
        return None
    e, g = np.ravel(expected), np.ravel(got)
    if e.shape != g.shape or e.size == 0 or not np.isfinite(g).all():
        return None
    big = np.abs(e) > 1e-6
    if not big.any():
        return None
    ratios = g[big] / e[big]
    c = float(np.median(ratios))
    if abs(c - 1) < 1e-3 or not np.allclose(g, c * e, atol=1e-6, rtol=1e-4):
        return None
    return c


def _negate(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_negate(v) for v in x)
    if isinstance(x, dict):
        return {k: _negate(v) for k, v in x.items()}
    return -x


def _call(fn: Callable, case: Case) -> Any:
    return fn(*_copy(case.args), **_copy(case.kwargs))


def _grad_inputs(case: Case, grad_args: Sequence[int]) -> tuple[tuple, list]:
    args = list(_copy(case.args))
    leaves = []
    for i in grad_args:
        args[i] = args[i].detach().clone().double().requires_grad_(True)
        leaves.append(args[i])
    return tuple(args), leaves


def check_function(
    learner: Callable,
    reference: Callable,
    cases: Sequence[Case],
    *,
    exercise: str,
    mistakes: Sequence[Mistake] = (),
    seed: int | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    arg_names: Sequence[str] | None = None,
    allow_inplace: bool = False,
    grad_args: Sequence[int] = (),
    quiet: bool = False,
) -> None:
    """Check ``learner`` against ``reference`` on every case; raise :class:`CheckFailed` with a hint.

    Args:
        learner: the learner's function.
        reference: the course's implementation, with the same positional signature.
        cases: the inputs (fresh random ones and edge cases); each is copied before each call.
        exercise: the exercise's name, used in messages (e.g. ``"the Q-learning update"``).
        mistakes: known wrong variants, tried in order when the values are wrong.
        seed: the seed the random cases were drawn with (shown so a failure can be reproduced).
        atol, rtol: tolerances for :func:`numpy.allclose` (outputs are compared in float64).
        arg_names: names of the positional arguments, for messages (default: the reference's).
        allow_inplace: whether the learner may change its inputs in place (tabular updates may).
        grad_args: positions of torch tensor arguments whose gradient (of the output's sum) must
            match the reference's: a loss must pass gradient to the log-probs and none to the
            advantages, returns or baselines.
        quiet: do not print the one-line success message.
    """
    __tracebackhide__ = True  # IPython and pytest show the learner the message, not this function's frames
    if arg_names is None:
        try:
            arg_names = list(inspect.signature(reference).parameters)
        except (TypeError, ValueError):
            arg_names = []
    again = f" (random inputs from seed={seed}: pass seed={seed} to the check to reproduce)" if seed is not None else ""

    def fail(case: Case, message: str, cause: BaseException | None = None) -> None:
        __tracebackhide__ = True
        raise CheckFailed(f"{exercise}: {message}\n  inputs: {case.name}{again}") from cause

    for case in cases:
        originals = _copy(case.args)
        args = _copy(case.args)
        try:
            out = learner(*args, **_copy(case.kwargs))
        except NotImplementedError:
            raise CheckFailed(
                f"{exercise}: not done yet — replace `raise NotImplementedError` in your function with your code, "
                "then run this check again."
            ) from None
        except Exception as exc:
            fail(case, f"your function raised {type(exc).__name__}: {exc}", exc)
        if not allow_inplace:
            for i, (before, after) in enumerate(zip(originals, args)):
                if not _same(before, after):
                    name = arg_names[i] if i < len(arg_names) else f"argument {i}"
                    fail(case, f"your function changed its input `{name}` in place; work on a copy "
                               "(e.g. `x = x.copy()` / `x.clone()`) or build a new array.")
        expected_raw = _call(reference, case)
        expected = _normalise(expected_raw, _structure(expected_raw))
        try:
            got = _normalise(out, _structure(expected_raw))
        except _Unconvertible as exc:
            fail(case, str(exc))
        problem = _compare(expected, got, atol, rtol)
        if problem is not None:
            fail(case, _diagnose(problem, expected, got, case, mistakes, atol, rtol))
        if grad_args:
            _check_gradients(learner, reference, case, grad_args, arg_names, atol, rtol, fail)
    if not quiet:
        seed_note = f", random ones from seed {seed}" if seed is not None else ""
        print(f"✓ {exercise}: correct on all {len(cases)} test cases{seed_note}.")


def _structure(x: Any) -> Any:
    """The expected output's structure, as ``_normalise`` wants it (lists of arrays count as tuples)."""
    if isinstance(x, list) and x and (_is_tensor(x[0]) or isinstance(x[0], np.ndarray)):
        return tuple(x)
    return x


def _diagnose(problem: str, expected: Any, got: Any, case: Case, mistakes: Sequence[Mistake], atol: float, rtol: float) -> str:
    values = ""
    if not isinstance(expected, (tuple, dict)) and np.shape(expected) == np.shape(got):
        values = f"\n  expected: {_fmt(expected)}\n  got:      {_fmt(got)}"
    if isinstance(expected, dict) and isinstance(got, dict):
        show = lambda d: {k: round(float(v), 4) for k, v in list(d.items())[:12]}  # noqa: E731
        values = f"\n  expected: {show(expected)}\n  got:      {show(got)}"
    if "wrong value" not in problem:  # shape, NaN, keys: the sentence says it all
        return problem + values
    for mistake in mistakes:
        try:
            variant_raw = _call(mistake.fn, case)
            variant = _normalise(variant_raw, _structure(variant_raw))
        except Exception:
            continue
        if _compare(expected, variant, atol, rtol) is not None and _compare(variant, got, atol, rtol) is None:
            return f"{problem}. Hint: {mistake.hint}{values}"
    if _compare(_negate(expected), got, atol, rtol) is None:
        return f"{problem}. Hint: the sign is flipped: you return minus the right answer.{values}"
    scale = _scale_of(expected, got)
    if scale is not None:
        return (
            f"{problem}. Hint: your result is the right one times {scale:.4g}: a constant factor is off "
            f"(sum instead of mean, or the other way round? a missing 0.5? a step size or discount applied twice?){values}"
        )
    return f"{problem}.{values}"


def _check_gradients(learner, reference, case, grad_args, arg_names, atol, rtol, fail) -> None:
    __tracebackhide__ = True
    torch = _torch()
    grads = []
    for fn in (reference, learner):
        args, leaves = _grad_inputs(case, grad_args)
        out = fn(*args, **_copy(case.kwargs))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if fn is learner and (not _is_tensor(out) or not out.requires_grad):
            fail(case, "your result carries no gradient: it must stay a torch tensor built from the inputs "
                       "(no .item(), .detach(), .numpy() or torch.no_grad()), or the optimizer has nothing to follow.")
        out.sum().backward()
        grads.append([leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves])
    for i, ref_grad, got_grad in zip(grad_args, *grads):
        name = arg_names[i] if i < len(arg_names) else f"argument {i}"
        ref_np, got_np = ref_grad.numpy(), got_grad.numpy()
        if np.allclose(got_np, ref_np, atol=atol, rtol=rtol):
            continue
        if not ref_np.any():
            fail(case, f"gradient flows into `{name}`: it is a fixed weight or target here, not something to "
                       f"optimise — use `{name}.detach()`.")
        if not got_np.any():
            fail(case, f"no gradient reaches `{name}`: it was detached or converted (keep it a tensor in the graph).")
        fail(case, f"the value is right but the gradient with respect to `{name}` is not: "
                   "something outside the formula (a detach, an in-place change, a clamp) alters it.")


# ----------------------------------------------------------------------------------------------
# Part 2: exercise notebooks generated from the solution notebooks
# ----------------------------------------------------------------------------------------------

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

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
EXERCISES_DIR = ROOT / "exercises"

REPO_URL = "https://github.com/rl-course/rl-course"
"""The course repository (Colab links and the Colab set-up cell clone it)."""
BRANCH = "main"


def exercise_namespace() -> dict[str, Any]:
    """A fresh namespace holding :data:`EXERCISE_GLOBALS`, as the notebooks' early import cell makes them."""
    import torch
    import torch.nn.functional as F

    return {"__name__": "__exercise__", "np": np, "math": math, "torch": torch, "F": F}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


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


def read_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


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
        tags = _tags(cell)
        if (EXERCISE_TAG in tags or CHECK_TAG in tags) and cell["cell_type"] != "code":
            raise ValueError(f"{path.name} cell {i}: the tags {EXERCISE_TAG!r}/{CHECK_TAG!r} belong on code cells")
        if EXERCISE_TAG in tags:
            if pending is not None:
                raise ValueError(f"{path.name} cell {pending}: exercise cell without a check cell (tag {CHECK_TAG!r}) after it")
            pending = i
        elif CHECK_TAG in tags:
            if pending is None:
                raise ValueError(f"{path.name} cell {i}: check cell without an exercise cell (tag {EXERCISE_TAG!r}) before it")
            solution = _source(cells[pending])
            yield ExercisePair(path, pending, i, solution, _source(cell), _defined_names(solution))
            pending = None
    if pending is not None:
        raise ValueError(f"{path.name} cell {pending}: exercise cell without a check cell (tag {CHECK_TAG!r}) after it")


def _header_cell(source_name: str) -> dict:
    text = (
        f"> **Exercise version** of [`notebooks/{source_name}`](../notebooks/{source_name}), generated by "
        "`python -m rl_basics.exercises build` (do not edit it by hand: edit the solution notebook and rebuild).\n"
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
        tags = _tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            if EXERCISE_TAG in tags:
                cell["source"] = make_stub(_source(cell), where=f"{source_name} cell {i}")
        cell.pop("id", None)  # ids are regenerated below: stable, and unique after cells were dropped
        cells.append(cell)
    cells.insert(min(1, len(cells)), _header_cell(source_name))
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    out["cells"] = cells
    out.setdefault("nbformat", 4)
    out["nbformat_minor"] = max(out.get("nbformat_minor", 5), 5)
    return out


def dumps_notebook(nb: dict) -> str:
    """Notebook JSON as Jupyter writes it (1-space indent, sorted keys), so rebuilding is byte-stable."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def solution_notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course's numbered notebooks."""
    return sorted(Path(directory).glob("[0-9][0-9]*.ipynb"))


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


CATALOGUE = ROOT / "docs" / "exercises.md"
"""Ready-made (exercise, check) cell pairs, one ``### Chapter NN — title`` section each."""


@dataclass
class CatalogueEntry:
    """One ready-made exercise of ``docs/exercises.md``: its title and the two cells' sources."""

    title: str
    solution: str
    check: str

    @property
    def chapter(self) -> str:
        found = re.match(r"Chapter (\d+)", self.title)
        return found.group(1) if found else ""


def catalogue(path: Path = CATALOGUE) -> list[CatalogueEntry]:
    """The entries of the catalogue: a ``### title`` heading, a ```` ```python exercise ```` block
    and a ```` ```python check ```` block."""
    text = Path(path).read_text(encoding="utf-8")
    pattern = r"^### ([^\n]+)\n+```python exercise\n(.*?)```\s*```python check\n(.*?)```"
    return [CatalogueEntry(t.strip(), sol, chk) for t, sol, chk in re.findall(pattern, text, re.S | re.M)]


def insert_exercise(path: Path, title: str, after: int) -> list[int]:
    """Insert a catalogue entry (a markdown cell, the exercise cell, its check cell) after cell ``after``.

    ``title`` is any unique part of the entry's title (e.g. ``"Q-learning update"``). Returns the
    indices of the three new cells.

    Raises:
        ValueError: no or several matching entries, ``after`` out of range, or the notebook
            already defines the exercise's function in an exercise cell.
    """
    matches = [e for e in catalogue() if title.lower() in e.title.lower()]
    if len(matches) != 1:
        raise ValueError(f"{title!r} matches {len(matches)} catalogue entries: {[e.title for e in matches]}")
    entry = matches[0]
    nb = read_notebook(path)
    cells = nb["cells"]
    if not -1 <= after < len(cells):
        raise ValueError(f"after={after} is outside the notebook's cells 0..{len(cells) - 1}")
    names = _defined_names(entry.solution)
    existing = {n for c in cells if EXERCISE_TAG in _tags(c) for n in _defined_names(_source(c))}
    if set(names) & existing:
        raise ValueError(f"{Path(path).name} already has an exercise cell defining {sorted(set(names) & existing)}")
    what = entry.title.split("—", 1)[-1].strip()
    new = [
        {"cell_type": "markdown", "metadata": {}, "source":
            f"### ✏️ Exercise: {what}\n\nWrite `{names[0]}` (its docstring says what it takes and returns), then run "
            "the check cell below it: it compares your function with the course's implementation on fresh random "
            "inputs and edge cases and tells you what is wrong."},
        {"cell_type": "code", "execution_count": None, "metadata": {"tags": [EXERCISE_TAG]}, "outputs": [],
         "source": entry.solution.rstrip("\n")},
        {"cell_type": "code", "execution_count": None, "metadata": {"tags": [CHECK_TAG]}, "outputs": [],
         "source": entry.check.rstrip("\n")},
    ]
    taken = {c.get("id") for c in cells}
    for i, cell in enumerate(new):
        base = f"exercise-{names[0].replace('_', '-')}-{i}"
        cell["id"] = base if base not in taken else f"{base}-{len(cells)}"
    cells[after + 1 : after + 1] = new
    Path(path).write_text(dumps_notebook(nb), encoding="utf-8")
    return [after + 1, after + 2, after + 3]


# ----------------------------------------------------------------------------------------------
# Colab: the set-up cell every notebook starts with, and the "Open in Colab" links
# ----------------------------------------------------------------------------------------------

COLAB_MARKER = "# Colab set-up"
COLAB_CELL = f'''{COLAB_MARKER}: installs the course when this notebook runs on Google Colab; elsewhere it does nothing.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    from importlib.metadata import version
    REPO, HOME = "{REPO_URL}", "/content/rl-course"
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth", "1", REPO, HOME], check=True)
    with open("/content/keep-colab-torch.txt", "w") as pin:  # never replace Colab's CUDA build of torch
        pin.write(f"torch=={{version('torch')}}\\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "/content/keep-colab-torch.txt", "-e", HOME], check=True)
    sys.path.insert(0, HOME)  # importable now, without restarting the session
    if any(m in sys.modules and version(m) != sys.modules[m].__version__ for m in ("numpy", "matplotlib")):
        print("pip upgraded a package this session had already loaded: Runtime > Restart session, then run on.")'''
"""The first code cell of every notebook (the repository URL is :data:`REPO_URL`)."""


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
           "source": COLAB_CELL}
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    if code and _source(cells[code[0]]).startswith(COLAB_MARKER):
        if _source(cells[code[0]]) == COLAB_CELL:
            return False
        cells[code[0]]["source"] = COLAB_CELL
    else:
        at = code[0] if code else len(cells)
        if any(c.get("id") == "colab-setup" for c in cells):
            new["id"] = "colab-setup-cell"
        cells.insert(at, new)
    Path(path).write_text(dumps_notebook(nb), encoding="utf-8")
    return True


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rl_basics.exercises", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="write the exercise notebooks (stubs instead of solutions)")
    p_build.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: notebooks/[0-9][0-9]*.ipynb)")
    p_build.add_argument("--out", type=Path, default=EXERCISES_DIR, help="output folder (default: exercises/)")
    p_list = sub.add_parser("list", help="list every (exercise, check) pair")
    p_list.add_argument("notebooks", nargs="*", type=Path)
    p_colab = sub.add_parser("colab-cell", help="print the Colab set-up cell, or insert/update it in notebooks")
    p_colab.add_argument("--insert", action="store_true", help="make it the first code cell of each notebook")
    p_colab.add_argument("notebooks", nargs="*", type=Path)
    p_insert = sub.add_parser("insert", help="insert a catalogue exercise (docs/exercises.md) into a notebook")
    p_insert.add_argument("notebook", type=Path)
    p_insert.add_argument("title", help="a unique part of the entry's title, e.g. 'Q-learning update'")
    p_insert.add_argument("--after", type=int, required=True, help="index of the cell to insert after (-1: at the top)")
    p_links = sub.add_parser("links", help='print an "Open in Colab" badge per notebook (for the README)')
    p_links.add_argument("--exercises", action="store_true", help="link the exercise notebooks instead")
    args = parser.parse_args(argv)

    if args.command == "build":
        for path in build(args.notebooks or None, args.out):
            n = sum(1 for c in read_notebook(path)["cells"] if EXERCISE_TAG in _tags(c))
            print(f"{path}  ({n} exercise{'s' if n != 1 else ''})")
    elif args.command == "list":
        for path in args.notebooks or solution_notebooks():
            for pair in iter_exercises(path):
                check = re.search(r"check_\w+", pair.check)
                print(f"{path.name}  cell {pair.exercise_index:>3}  {', '.join(pair.names) or '(region)'}  ->  "
                      f"{check.group(0) if check else pair.check.strip().splitlines()[-1]}")
    elif args.command == "insert":
        at = insert_exercise(args.notebook, args.title, args.after)
        print(f"{args.notebook}: inserted cells {at} (markdown, exercise, check)")
    elif args.command == "links":
        for path in solution_notebooks():
            folder = "exercises" if args.exercises else "notebooks"
            print(f"| {path.name} | {colab_badge(f'{folder}/{path.name}')} |")
    elif args.command == "colab-cell":
        if not args.insert:
            print(COLAB_CELL)
        for path in (args.notebooks or solution_notebooks()) if args.insert else []:
            print(f"{path}: {'updated' if insert_colab_cell(path) else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
