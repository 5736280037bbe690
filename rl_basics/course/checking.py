"""The check engine: a learner's function checked against the course's reference, with a hint.

The ``check_*`` functions of :mod:`rl_basics.checks` and :mod:`rlhf.checks` are built on it.
:func:`check_function` calls the learner's function and the reference on the same fresh,
seeded random inputs and on fixed edge cases, and raises :class:`CheckFailed` (an
``AssertionError``) whose message says *what is wrong*: a wrong shape (related to the inputs'
axes, an off-by-one only when a shifted slice reproduces the output), NaN, a returned ``None``,
an input changed in place, a cut gradient. For wrong values it gives a hint only when the hint
explains *every* test case: one of the check's known mistakes (:class:`Mistake`: the reference
with the bug built in, e.g. "ignores the terminated flag") that reproduces the learner's output
on all of them, a sign flipped on all of them, or one constant factor that fits them all;
otherwise it shows the expected and the returned values of the first failing case. Each check
is wrapped in :func:`learner_check`, so a failure reaches the notebook as the check cell's line
and the message.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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

    The check reports ``hint`` when ``fn`` reproduces the learner's output on every test case
    (raising where the learner raised) and differs from the correct answer on a failing one.
    With ``nan_means_any``, NaN entries of ``fn``'s output mark inputs where the mistake has no
    single output (e.g. a division by a zero count, which learners guard in different ways): they
    match whatever the learner returned there.
    """

    hint: str
    fn: Callable[..., Any]
    nan_means_any: bool = False


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


def _input_shapes(case: Case, arg_names: Sequence[str]) -> list[tuple[str, tuple]]:
    """``(name, shape)`` of each array or tensor argument of ``case`` (for the shape hints)."""
    shapes = []
    for i, arg in enumerate(case.args):
        if _is_tensor(arg) or isinstance(arg, np.ndarray):
            shapes.append((arg_names[i] if i < len(arg_names) else f"argument {i}", tuple(arg.shape)))
    return shapes


def _shifted_by_one(expected: np.ndarray, got: np.ndarray, axis: int, atol: float, rtol: float) -> str | None:
    """``"first"`` or ``"last"`` when the shorter array is the longer one without that entry along ``axis``."""
    longer, shorter = (expected, got) if expected.shape[axis] > got.shape[axis] else (got, expected)
    n = shorter.shape[axis]
    for start, end in ((0, "last"), (1, "first")):
        if np.allclose(np.take(longer, range(start, start + n), axis=axis), shorter, atol=atol, rtol=rtol, equal_nan=True):
            return end
    return None


def _shape_hint(expected: np.ndarray, got: np.ndarray, inputs: Sequence[tuple[str, tuple]], atol: float, rtol: float) -> str:
    """What the shapes of ``got`` and ``expected`` (different) say; every claim is checked on the arrays."""
    e, g = np.shape(expected), np.shape(got)
    hint = f"wrong shape: expected {e}, got {g}."
    if len(e) >= 2 and g == tuple(reversed(e)):
        if np.allclose(np.transpose(got), expected, atol=atol, rtol=rtol, equal_nan=True):
            return hint + " Your result is the right one transposed: check which axis is time and which is the batch."
        return hint + (" Your shape is the expected one transposed (and the values differ too): check which axis "
                       "is time and which is the batch.")
    if len(g) < len(e):
        if g == tuple(d for d in e if d != 1):
            return hint + (" The length-1 axes of the answer are missing from yours (a squeeze(), or indexing with "
                           "an integer, drops them; with a batch of one the batch axis has length 1): keep them.")
        dropped = [i for i in range(len(e)) if e[:i] + e[i + 1:] == g]
        if len(g) == len(e) - 1 and dropped:
            return hint + (f" Axis {dropped[0]} of the answer (length {e[dropped[0]]}) is missing from yours: it must "
                           "stay (no sum, mean, max or index over it).")
        return hint + f" Your result has {len(g)} axes, the answer {len(e)}."
    if len(g) > len(e):
        extra = [i for i in range(len(g)) if g[:i] + g[i + 1:] == e]
        text = (f" Your result has an extra axis {extra[0]} of length {g[extra[0]]}." if len(g) == len(e) + 1 and extra
                else f" Your result has {len(g)} axes, the answer {len(e)}.")
        if len(e) == 1 and g == (e[0], e[0]):
            text += (f" (A ({e[0]},) array combined with a ({e[0]}, 1) one broadcasts to {g}: look for a missing or "
                     "extra keepdim / [:, None].)")
        return hint + text
    differ = [i for i in range(len(e)) if e[i] != g[i]]
    if len(differ) == 1 and abs(e[differ[0]] - g[differ[0]]) == 1:
        axis = differ[0]
        end = _shifted_by_one(expected, got, axis, atol, rtol)
        if end is not None:
            change = f"without its {end} entry" if g[axis] < e[axis] else f"with an extra {end} entry"
            return hint + (f" Your result is the right one {change} along axis {axis}: an off-by-one in a loop's "
                           "range or in a slice.")
    parts = []
    for i in differ:
        part = f"axis {i} has length {g[i]} instead of {e[i]}"
        source = next(((name, shape, k) for name, shape in inputs for k, n in enumerate(shape) if n == g[i]), None)
        if source is not None:
            name, shape, k = source
            part += f" ({g[i]} is the length of axis {k} of `{name}`, shape {shape})"
        parts.append(part)
    return hint + " In your result " + "; ".join(parts) + ": check which axis you reduce, index or slice along."


def _compare(expected: Any, got: Any, atol: float, rtol: float, where: str = "",
             inputs: Sequence[tuple[str, tuple]] = ()) -> str | None:
    """None when ``got`` matches ``expected``; otherwise a sentence saying how it differs.

    ``inputs`` (``(name, shape)`` of the arguments) lets a wrong shape be related to them.
    """
    if isinstance(expected, tuple):
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = _compare(e, g, atol, rtol, f"{where} output {i} of the returned tuple:".strip(), inputs)
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
            problem = _compare(expected[k], got[k], atol, rtol, f"{where} the value for key {k!r}:".strip(), inputs)
            if problem:
                return problem
        return None
    label = f"{where} " if where else ""
    if np.shape(got) != np.shape(expected):
        return label + _shape_hint(expected, got, inputs, atol, rtol)
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


def _is_wrong_value(problem: str) -> bool:
    """Whether ``problem`` (from :func:`_compare`) is about values: those are diagnosed across all the cases."""
    return "wrong value" in problem


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


@dataclass
class _Outcome:
    """The learner's function on one case: its output next to the right one, and what is wrong, if anything."""

    case: Case
    expected: Any = None  # normalised (float64 numpy, the reference's structure)
    got: Any = None  # normalised like ``expected``; None when the learner raised or returned something unusable
    raised: bool = False
    problem: str | None = None  # None: right on this case
    cause: BaseException | None = None

    @property
    def comparable(self) -> bool:
        return self.got is not None and self.expected is not None


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

    Every case is run, and the failure names the first failing one. A hint is claimed only when
    it explains *every* failing case: a known mistake must reproduce the learner's output on all
    of them (raising where the learner raised); a flipped sign, or one constant factor (pinned
    down by at least two non-zero entries of the failing cases), must hold on every case.
    Otherwise the message shows the expected and the returned values of the first failing case.

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

    def fail(case: Case, message: str, cause: BaseException | None = None, more: str = "") -> None:
        __tracebackhide__ = True
        raise CheckFailed(f"{exercise}: {message}\n  inputs: {case.name}{again}{more}") from cause

    outcomes = [_run_case(learner, reference, case, exercise, arg_names, allow_inplace, atol, rtol) for case in cases]
    failed = [o for o in outcomes if o.problem is not None]
    if failed:
        first = failed[0]
        if _is_wrong_value(first.problem):
            message = _diagnose(outcomes, mistakes, atol, rtol)
        else:
            message = first.problem + (_values(first.expected, first.got, atol, rtol) if first.comparable else "")
        more = ""
        if len(failed) > 1:
            others = "; ".join(o.case.name for o in failed[1:4]) + ("; ..." if len(failed) > 4 else "")
            more = f"\n  wrong on {len(failed)} of the {len(cases)} test cases; the others: {others}"
        fail(first.case, message, first.cause, more)
    if grad_args:
        for case in cases:
            _check_gradients(learner, reference, case, grad_args, arg_names, atol, rtol, fail)
    if not quiet:
        seed_note = f", random ones from seed {seed}" if seed is not None else ""
        print(f"✓ {exercise}: correct on all {len(cases)} test cases{seed_note}.")


def _run_case(learner: Callable, reference: Callable, case: Case, exercise: str, arg_names: Sequence[str],
              allow_inplace: bool, atol: float, rtol: float) -> _Outcome:
    """Run the learner's function and the reference on one case and compare their outputs."""
    originals = _copy(case.args)
    args = _copy(case.args)
    try:
        with np.errstate(all="ignore"):  # an overflow to inf that ends in the right number is fine; wrong values are reported
            out = learner(*args, **_copy(case.kwargs))
    except NotImplementedError:
        raise CheckFailed(
            f"{exercise}: not done yet — replace `raise NotImplementedError` in your function with your code, "
            "then run this check again."
        ) from None
    except Exception as exc:
        return _Outcome(case, raised=True, problem=f"your function raised {type(exc).__name__}: {exc}", cause=exc)
    if not allow_inplace:
        for i, (before, after) in enumerate(zip(originals, args)):
            if not _same(before, after):
                name = arg_names[i] if i < len(arg_names) else f"argument {i}"
                return _Outcome(case, problem=f"your function changed its input `{name}` in place; work on a copy "
                                              "(e.g. `x = x.copy()` / `x.clone()`) or build a new array.")
    expected_raw = _call(reference, case)
    outcome = _Outcome(case, expected=_normalise(expected_raw, _structure(expected_raw)))
    try:
        outcome.got = _normalise(out, _structure(expected_raw))
    except _Unconvertible as exc:
        outcome.problem = str(exc)
        return outcome
    outcome.problem = _compare(outcome.expected, outcome.got, atol, rtol, inputs=_input_shapes(case, arg_names))
    return outcome


def _structure(x: Any) -> Any:
    """The expected output's structure, as ``_normalise`` wants it (lists of arrays count as tuples)."""
    if isinstance(x, list) and x and (_is_tensor(x[0]) or isinstance(x[0], np.ndarray)):
        return tuple(x)
    return x


def _fmt(a: Any, limit: int = 12, precision: int = 4) -> str:
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k!r}: {_fmt(v, limit, precision)}" for k, v in list(a.items())[:limit]) + \
            (", ...}" if len(a) > limit else "}")
    flat = np.asarray(a).ravel()
    text = np.array2string(flat[:limit], precision=precision, suppress_small=True, max_line_width=100)
    if np.ndim(a) == 0:
        text = text.strip("[]")
    more = f" ... ({flat.size} values)" if flat.size > limit else ""
    shape = f" shape {np.shape(a)}" if np.ndim(a) > 1 else ""
    return text + more + shape


def _pair(expected: Any, got: Any) -> tuple[str, str]:
    """The two values as text, with more digits when four do not tell them apart."""
    shown = _fmt(expected), _fmt(got)
    return shown if shown[0] != shown[1] else (_fmt(expected, precision=8), _fmt(got, precision=8))


def _values(expected: Any, got: Any, atol: float, rtol: float, label: str = "") -> str:
    """The expected and the returned values, each output of a tuple labelled.

    Beyond 12 values, the entries that differ are listed with their indices (the first ones would not show them).
    """
    if isinstance(expected, tuple) and isinstance(got, tuple):
        return "".join(f"\n  output {i} is right: {_fmt(e)}" if _compare(e, g, atol, rtol) is None
                       else _values(e, g, atol, rtol, f"output {i} ") for i, (e, g) in enumerate(zip(expected, got)))
    e_text, g_text = _pair(expected, got)
    text = f"\n  {label}expected: {e_text}\n  {label}got:{' ' * 6}{g_text}"
    if isinstance(expected, dict) or np.shape(expected) != np.shape(got) or np.size(expected) <= 12:
        return text
    wrong = ~np.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)
    bad = [tuple(int(i) for i in index) for index in np.argwhere(wrong)]
    shown = []
    for index in bad[:5]:
        e_text, g_text = _pair(expected[index], got[index])
        shown.append(f"at {index}: expected {e_text}, got {g_text}")
    return text + (f"\n  {label}differences: " + "; ".join(shown) + ("; ..." if len(bad) > 5 else "") if shown else "")


def _fill_unknown(variant: Any, expected: Any, fill: Any) -> Any:
    """``variant`` with its NaN entries (where the answer is not NaN) replaced by ``fill``'s.

    See :attr:`Mistake.nan_means_any`.
    """
    if isinstance(variant, tuple) and isinstance(expected, tuple) and isinstance(fill, tuple):
        return tuple(_fill_unknown(v, e, f) for v, e, f in zip(variant, expected, fill))
    if isinstance(variant, dict) or np.shape(variant) != np.shape(expected) or np.shape(fill) != np.shape(expected):
        return variant
    unknown = np.isnan(variant) & ~np.isnan(expected)
    return np.where(unknown, fill, variant) if unknown.any() else variant


def _explains(mistake: Mistake, outcomes: Sequence[_Outcome], atol: float, rtol: float) -> bool:
    """Whether ``mistake`` reproduces the learner's function on every failing case.

    Its variant must raise where the learner raised and match the learner's output on the other
    failing cases (where it then differs from the answer). The cases the learner gets right do
    not count: a variant may differ there (e.g. a division by zero the learner happens to get right).
    """
    shows_the_mistake = False
    for o in (o for o in outcomes if o.problem is not None):
        try:
            with np.errstate(all="ignore"):
                raw = _call(mistake.fn, o.case)
            variant = _normalise(raw, _structure(raw))
        except Exception:
            if o.raised:  # raising where the learner raised reproduces it too
                continue
            return False
        if not o.comparable:
            return False
        as_got, as_expected = variant, variant
        if mistake.nan_means_any:
            as_got, as_expected = _fill_unknown(variant, o.expected, o.got), _fill_unknown(variant, o.expected, o.expected)
        if _compare(as_got, o.got, atol, rtol) is not None:
            return False
        if _compare(o.expected, as_expected, atol, rtol) is not None:
            shows_the_mistake = True
    return shows_the_mistake


def _common_scale(outcomes: Sequence[_Outcome]) -> float | None:
    """The constant c != 1 with got == c * expected on every case, when there is one.

    Claimed only when at least two non-zero expected entries of the failing cases pin it down (a
    single number always fits some factor).
    """
    e_parts, g_parts, pinned = [], [], 0
    for o in outcomes:
        if not o.comparable or isinstance(o.expected, (tuple, dict)) or np.shape(o.expected) != np.shape(o.got):
            return None
        e, g = np.ravel(o.expected), np.ravel(o.got)
        e_parts.append(e)
        g_parts.append(g)
        if o.problem is not None:
            pinned += int(np.sum(np.abs(e) > 1e-6))
    e, g = np.concatenate(e_parts), np.concatenate(g_parts)
    if pinned < 2 or not np.isfinite(g).all():
        return None
    big = np.abs(e) > 1e-6
    c = float(np.median(g[big] / e[big]))
    if abs(c - 1) < 1e-3 or not np.allclose(g, c * e, atol=1e-6, rtol=1e-4):
        return None
    return c


def _diagnose(outcomes: Sequence[_Outcome], mistakes: Sequence[Mistake], atol: float, rtol: float) -> str:
    """The message for wrong values: a hint that explains every case, or else the values of the first failing one."""
    first = next(o for o in outcomes if o.problem is not None)
    values = _values(first.expected, first.got, atol, rtol)
    for mistake in mistakes:
        if _explains(mistake, outcomes, atol, rtol):
            return f"{first.problem}. Hint: {mistake.hint}{values}"
    if all(o.comparable and _compare(_negate(o.expected), o.got, atol, rtol) is None for o in outcomes):
        return f"{first.problem}. Hint: the sign is flipped: you return minus the right answer.{values}"
    scale = _common_scale(outcomes)
    if scale is not None:
        return (
            f"{first.problem}. Hint: on every test case your result is the right one times {scale:.4g}: a constant "
            "factor is off (sum instead of mean, or the other way round? a missing 0.5? a step size or discount "
            f"applied twice?){values}"
        )
    return f"{first.problem}.{values}"


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

