"""Deep reinforcement-learning agents in torch, one algorithm per module.

The algorithms:

- ``rl_basics.agents.reinforce``  REINFORCE, with or without a learned baseline (chapter 6)
- ``rl_basics.agents.a2c``        advantage actor-critic over vector envs, n-step / GAE(lambda) (chapter 7)
- ``rl_basics.agents.ppo``        proximal policy optimisation, clipped surrogate (chapter 8)
- ``rl_basics.agents.dqn``        deep Q-networks and Double DQN: replay buffer, target network, Huber loss
  (the chapter on value-function approximation and DQN)

The pieces they share, each in one place:

- ``rl_basics.agents.losses``       GAE, PPO's clipped policy and value losses, masked statistics
  (torch only: ``rlhf``'s PPO trainer imports its math from here)
- ``rl_basics.agents.networks``     actor and critic MLPs for ``Discrete`` and ``Box`` spaces, ``load_actor``
- ``rl_basics.agents.rollout``      gymnasium 1.x vector envs: ``as_vector_env``, the autoreset-aware
  ``RolloutCollector`` and its ``VectorRollout``, ``evaluate``
- ``rl_basics.agents.on_policy``    what A2C and PPO share: ``OnPolicyConfig``, ``make_batch``, ``OnPolicyLoop``
- ``rl_basics.agents.training``     ``TrainResult``, seeding, torch threads, progress bar, Adam, NaN checks
- ``rl_basics.agents.checkpoints``  atomic checkpoints with the RNG states

Every agent module has a ``XConfig`` dataclass (one docstring per hyperparameter,
validated on construction through ``rl_basics.validation``) and
``train(env, config, seed=0, progress=True) -> TrainResult``. Import the module you need,
e.g. ``from rl_basics.agents import ppo``; nothing is imported eagerly here.
"""
