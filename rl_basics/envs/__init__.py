"""The course's own gymnasium environments (Sutton & Barto examples gymnasium lacks).

Each is registered under the ``rl_basics/`` namespace when ``rl_basics`` is imported.
Entry points are strings, so a module is only imported when its env is made.
"""

from gymnasium.envs.registration import register, registry

_ENVS = {
    # id: (entry point, max_episode_steps or None)
    "rl_basics/GridWorld4x4-v0": ("rl_basics.envs.gridworld:GridWorld4x4Env", None),
    "rl_basics/RandomWalk-v0": ("rl_basics.envs.random_walk:RandomWalkEnv", None),
    "rl_basics/WindyGridworld-v0": ("rl_basics.envs.windy_gridworld:WindyGridworldEnv", None),
    "rl_basics/MaximizationBias-v0": ("rl_basics.envs.maximization_bias:MaximizationBiasEnv", None),
    "rl_basics/ShortCorridor-v0": ("rl_basics.envs.short_corridor:ShortCorridorEnv", 1000),
}

for _id, (_entry_point, _max_steps) in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry_point, max_episode_steps=_max_steps)
