"""Deep reinforcement-learning agents in torch, one algorithm per module.

- ``rl_basics.agents.core``       the shared pieces: GAE, the clipped PPO losses, masked
  statistics, actor and critic networks for ``Discrete`` and ``Box`` action spaces,
  the gymnasium 1.x vector-env rollout (autoreset-aware), evaluation, checkpoints
- ``rl_basics.agents.reinforce``  REINFORCE, with or without a learned baseline (chapter 6)
- ``rl_basics.agents.a2c``        advantage actor-critic over vector envs, n-step / GAE(lambda) (chapter 7)
- ``rl_basics.agents.ppo``        proximal policy optimisation, clipped surrogate (chapter 8)
- ``rl_basics.agents.dqn``        deep Q-networks and Double DQN: replay buffer, target network, Huber loss
  (the chapter on value-function approximation and DQN)

Every agent module has a ``XConfig`` dataclass (one docstring per hyperparameter,
validated on construction) and ``train(env, config, seed=0, progress=True) -> TrainResult``.
Import the module you need, e.g. ``from rl_basics.agents import ppo``; nothing is
imported eagerly here.
"""
