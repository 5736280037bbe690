"""rlhf: language-model alignment helpers of the course (tiny world, SFT, reward models, PPO-RLHF)."""
