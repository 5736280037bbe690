"""rlhf: language-model alignment helpers of the course (tiny world, SFT, reward models, PPO-RLHF).

Chapters 9–10 (the offline tiny world and its first two RLHF stages):

- :mod:`rlhf.paths` — where data lives (``$RL_COURSE_DATA``, the checkout's ``data/``, or
  ``~/.cache/rl-course``) and the file-locked, atomic cache of built artifacts;
- :mod:`rlhf.corpus` — the seeded movie-review generator and its prompts;
- :mod:`rlhf.tiny_world` — tokenizer, tiny ``PhiForCausalLM``, and the cached stages
  ``base_model_dir()``, ``sft_model_dir()``, ``preference_dataset_path()``, ``reward_model_dir()``;
  ``python -m rlhf.tiny_world build`` rebuilds them;
- :mod:`rlhf.models` — ``load_model`` / ``load_reward_model`` for ``"tiny"``, ``"auto"``, a local
  directory or a hub id such as ``"microsoft/phi-2"`` (dtype, device, pad token, LoRA);
- :mod:`rlhf.policy` — sampling, response log-probabilities, per-token KL, perplexity;
- :mod:`rlhf.gold` — the gold rater (ground truth) and the Bradley–Terry annotator;
- :mod:`rlhf.sft`, :mod:`rlhf.preferences`, :mod:`rlhf.reward` — SFT with TRL's ``SFTTrainer``,
  preference data and its validation, reward modelling with TRL's ``RewardTrainer``.

Chapters 11–12 (PPO-RLHF and beyond):

- :mod:`rlhf.value_head` — policy, reference and value on one frozen base (LoRA adapters);
- :mod:`rlhf.ppo_rollout`, :mod:`rlhf.ppo` — the course's PPO trainer for language models;
- :mod:`rlhf.memory` — the GPU memory bill of PPO-RLHF of phi-2, component by component;
- :mod:`rlhf.cli` (``rlhf-pipeline``), :mod:`rlhf.mlrun_job` — the whole pipeline from the
  command line, and as an MLRun job;
- :mod:`rlhf.kl_regularised` — the closed-form optimum of the KL-regularised objective on a toy;
- :mod:`rlhf.baselines` — DPO, GRPO and RLOO with TRL, and the shared evaluation of every policy;
- :mod:`rlhf.checks` — the chapters' exercise checks.
"""
