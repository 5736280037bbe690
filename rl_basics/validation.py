"""Argument and hyperparameter checks, one wording for each rule.

Every module of the course validates its inputs through these functions, so a rule is
written (and worded) once:

- :func:`check_gamma` / :func:`check_unit_interval`: a number in ``[0, 1]`` (a discount
  factor, GAE's lambda), used by ``rl_basics.dp``, ``rl_basics.tabular`` and the agents' GAE;
- :func:`check_positive_int`: a count such as ``n_episodes`` (bools rejected);
- :func:`check_fields` / :func:`check_one_of`: the fields of a config dataclass against a
  named rule (the agents' ``A2CConfig``, ``PPOConfig``, ``ReinforceConfig``, ``DQNConfig``, and
  rlhf's ``PPOConfig``, ``SFTSettings``, ``PreferenceConfig``, ``RewardSettings``, ``DPOSettings``,
  ``GroupSettings``).

Each raises ``ValueError`` naming the argument (for a config: the class and the field),
the rule and the value it got, e.g. ``PPOConfig.gamma must be in [0, 1], got 1.01``.
Only the standard library is imported here, so any module can use it.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a number (a string is not a number here)."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of more than one element
        return None


def _is_integer(value: Any) -> bool:
    """An int or numpy integer; a bool is not a count."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _in_unit_interval(value: Any) -> bool:
    number = _number(value)
    return number is not None and 0.0 <= number <= 1.0


def _positive(value: Any) -> bool:
    number = _number(value)
    return number is not None and number > 0


def _non_negative(value: Any) -> bool:
    number = _number(value)
    return number is not None and number >= 0


def _layer_widths(value: Any) -> bool:
    return isinstance(value, tuple) and all(_is_integer(width) and width >= 1 for width in value)


RULES: dict[str, Callable[[Any], bool]] = {
    "> 0": _positive,
    ">= 0": _non_negative,
    "> 0 or None": lambda value: value is None or _positive(value),
    ">= 0 or None": lambda value: value is None or _non_negative(value),
    "in [0, 1]": _in_unit_interval,
    "an integer >= 1": lambda value: _is_integer(value) and value >= 1,
    "an integer >= 0": lambda value: _is_integer(value) and value >= 0,
    "an integer >= 1 or None": lambda value: value is None or (_is_integer(value) and value >= 1),
    "positive layer widths": lambda value: _layer_widths(value) and len(value) > 0,
    "positive layer widths or () (a linear network)": _layer_widths,
    "a non-empty tuple of module names": lambda value: (isinstance(value, tuple) and len(value) > 0
                                                         and all(isinstance(name, str) and name for name in value)),
}
"""The rules :func:`check_fields` knows, by the words its error message uses."""


def check_fields(config: Any, rule: str, *names: str) -> None:
    """Raise ``ValueError("<Config>.<name> must be <rule>, got <value>")`` for the first field
    of ``config`` among ``names`` that breaks ``rule`` (a key of :data:`RULES`)."""
    test = RULES[rule]
    for name in names:
        value = getattr(config, name)
        if not test(value):
            raise ValueError(f"{type(config).__name__}.{name} must be {rule}, got {value!r}")


def check_one_of(config: Any, name: str, choices: Iterable[Any]) -> None:
    """Raise ``ValueError`` unless ``config.<name>`` is one of ``choices`` (the message lists them)."""
    choices = tuple(choices)
    value = getattr(config, name)
    if value not in choices:
        allowed = " or ".join(repr(choice) for choice in choices)
        raise ValueError(f"{type(config).__name__}.{name} must be {allowed}, got {value!r}")


def check_unit_interval(name: str, value: Any) -> float:
    """A number in ``[0, 1]``, returned as a float; ``ValueError`` naming ``name`` otherwise."""
    if not _in_unit_interval(value):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_gamma(gamma: Any) -> float:
    """A discount factor in ``[0, 1]``, returned as a float."""
    return check_unit_interval("gamma", gamma)


def check_positive_int(name: str, value: Any) -> int:
    """A positive integer (bools rejected), returned as an int."""
    if not _is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


__all__ = ["RULES", "check_fields", "check_gamma", "check_one_of", "check_positive_int", "check_unit_interval"]
