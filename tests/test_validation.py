"""rl_basics.validation: one wording per rule, used by the configs, DP, the tabular methods and GAE."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_basics import dp, tabular
from rl_basics.agents import a2c, dqn, ppo, reinforce
from rl_basics.agents.losses import compute_gae
from rl_basics.agents.on_policy import OnPolicyConfig
from rl_basics.validation import check_fields, check_gamma, check_positive_int, check_unit_interval

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config, field, value, message", [
    (a2c.A2CConfig, "gamma", 1.5, "A2CConfig.gamma must be in [0, 1], got 1.5"),
    (ppo.PPOConfig, "n_steps", 0, "PPOConfig.n_steps must be > 0, got 0"),
    (ppo.PPOConfig, "target_kl", -1.0, "PPOConfig.target_kl must be > 0 or None, got -1.0"),
    (a2c.A2CConfig, "optimizer", "sgd", "A2CConfig.optimizer must be 'adam' or 'rmsprop', got 'sgd'"),
    (OnPolicyConfig, "ent_coef", -0.1, "OnPolicyConfig.ent_coef must be >= 0, got -0.1"),
    (reinforce.ReinforceConfig, "total_episodes", 2.5,
     "ReinforceConfig.total_episodes must be an integer >= 1, got 2.5"),
    (dqn.DQNConfig, "hidden_sizes", (), "DQNConfig.hidden_sizes must be positive layer widths, got ()"),
    (dqn.DQNConfig, "learning_starts", True, "DQNConfig.learning_starts must be an integer >= 0, got True"),
])
def test_config_errors_name_the_class_the_field_the_rule_and_the_value(config, field, value, message):
    with pytest.raises(ValueError) as error:
        config(**{field: value})
    assert str(error.value) == message


def test_a_linear_reinforce_policy_is_allowed_and_a_zero_width_layer_is_not():
    assert reinforce.ReinforceConfig(hidden_sizes=[]).hidden_sizes == ()
    with pytest.raises(ValueError, match=r"hidden_sizes must be positive layer widths or \(\)"):
        reinforce.ReinforceConfig(hidden_sizes=(64, 0))


def test_the_shared_on_policy_fields_are_validated_once_for_a2c_and_ppo():
    for config in (a2c.A2CConfig, ppo.PPOConfig):
        assert issubclass(config, OnPolicyConfig)
        with pytest.raises(ValueError, match=rf"{config.__name__}.gae_lambda must be in \[0, 1\]"):
            config(gae_lambda=1.2)


def test_an_unknown_rule_is_a_programming_error():
    with pytest.raises(KeyError):
        check_fields(a2c.A2CConfig(), "> 1", "gamma")


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.9", None, [0.9]])
def test_one_gamma_check_for_dp_the_tabular_methods_and_gae(gamma):
    assert tabular.check_gamma is check_gamma  # tabular re-exports the one check
    zeros = torch.zeros(3, 1)
    for call in (lambda: check_gamma(gamma), lambda: dp.q_from_v(_two_state_p(), np.zeros(2), gamma),
                 lambda: compute_gae(zeros, zeros, zeros, zeros, zeros, gamma, 0.9)):
        with pytest.raises(ValueError, match=r"^gamma must be a number in \[0, 1\], got "):
            call()


def test_numbers_of_any_kind_pass():
    assert check_gamma(np.float32(0.5)) == 0.5 and check_gamma(1) == 1.0 and check_gamma(torch.tensor(0.25)) == 0.25
    assert check_unit_interval("lam", 0.0) == 0.0
    assert check_positive_int("n", np.int64(3)) == 3
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="^n must be a positive integer"):
            check_positive_int("n", bad)


def test_validation_and_the_math_import_no_gymnasium():
    """``rl_basics.validation`` needs only the standard library and ``rl_basics.agents.losses`` only torch, so the
    tabular code, DP and ``rlhf`` can use them without the agents' environments and networks."""
    def top_level_imports(path):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        return {name.split(".")[0] if not name.startswith("rl_basics") else name for name in names}

    assert top_level_imports(ROOT / "rl_basics" / "validation.py") <= {"__future__", "numbers", "collections", "typing"}
    assert top_level_imports(ROOT / "rl_basics" / "agents" / "losses.py") <= {
        "__future__", "collections", "torch", "rl_basics.validation"}


def _two_state_p():
    return {s: {0: [(1.0, s, 0.0, False)]} for s in range(2)}
