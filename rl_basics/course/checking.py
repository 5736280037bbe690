"""The check engine: a learner's function checked against the course's reference, with a hint.

The ``check_*`` functions of :mod:`rl_basics.checks` and :mod:`rlhf.checks` are built on it.
:func:`check_function` calls the learner's function and the reference on the same fresh,
seeded random inputs and on edge cases, and raises :class:`CheckFailed` (an
``AssertionError``) whose message says *what is wrong*: a wrong shape (transposed? reduced
over the wrong axis?), NaN, a flipped sign, a constant factor, a returned ``None``, an input
changed in place, a cut gradient, or one of the check's own known mistakes (:class:`Mistake`:
a variant of the reference with the bug built in, e.g. "ignores the terminated flag", whose
output the learner's matches). Each check is wrapped in :func:`learner_check`, so a failure
reaches the notebook as the check cell's line and the message.
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

