"""rl_basics: the classic-RL helpers of the course.

Importing the package registers the course's own gymnasium environments, so
``gym.make("rl_basics/WindyGridworld-v0")`` works after ``import rl_basics``.

Modules (import what you need):

- ``rl_basics.mdp``       tabular models in gymnasium's ``P[s][a]`` convention
- ``rl_basics.bandits``   k-armed bandits: the testbed, epsilon-greedy, UCB, gradient bandit, Thompson sampling, regret
- ``rl_basics.dp``        policy evaluation, policy iteration, value iteration
- ``rl_basics.gambler``   Sutton & Barto's gambler's problem as a ``P`` dict
- ``rl_basics.policies``  epsilon-greedy action selection and GLIE schedules
- ``rl_basics.tabular``   what the tabular methods share: argument checks, flat state indices (``TabularSpec``)
- ``rl_basics.lanes``     the simulators the tabular methods run on, many runs at once (the gymnasium env, its
  model ``P``, a numpy Blackjack), the episode loop and episode batches
- ``rl_basics.blackjack`` Blackjack's rules (``sab=True``): the book's policy and states, exact values
- ``rl_basics.mc``        Monte-Carlo prediction and control
- ``rl_basics.td``        TD(0), n-step TD, SARSA, Q-learning, Expected SARSA, Double Q: each update as a
  function written like the book's line (``td.sarsa_update``, ...), and the algorithms that run them
- ``rl_basics.policy_objectives``  exact J_1, J_avV, J_avR of a policy on a small MDP
- ``rl_basics.approximation``, ``rl_basics.tile_coding``  value-function approximation: state aggregation,
  semi-gradient TD, tile coding, semi-gradient SARSA (Mountain Car), Baird's counterexample
- ``rl_basics.agents``    DQN, REINFORCE, A2C and PPO in torch
- ``rl_basics.plotting``  value heatmaps, policy arrows, learning curves
- ``rl_basics.widgets``   sliders (gamma, epsilon, alpha, lambda, beta) that still teach without a widget frontend
- ``rl_basics.checks``    the check functions the exercises' check cells call (chapters 0-8)
- ``rl_basics.validation``  the argument and config checks every module uses (one wording per rule)
- ``rl_basics.course``    course tooling, which learners never need to read: the check engine, the
  exercise-notebook generator, the Colab set-up cell and links
"""

from rl_basics import envs  # noqa: F401  (registers the rl_basics/* environments)

__version__ = "0.1.0"
