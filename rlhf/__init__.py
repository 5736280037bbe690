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
- :mod:`rlhf.tokens` — a language model's token mechanics, written once: prompts and left
  padding, position ids, packing, float32 log-probabilities, the one sampler, decoding;
- :mod:`rlhf.policy` — a language model as a policy on text: sampling responses, their
  log-probabilities, per-token KL (k1, k3, exact), perplexity;
- :mod:`rlhf.gold` — the gold rater (ground truth) and the Bradley–Terry annotator;
- :mod:`rlhf.sft`, :mod:`rlhf.preferences`, :mod:`rlhf.reward` — SFT with TRL's ``SFTTrainer``,
  preference data and its validation, reward modelling with TRL's ``RewardTrainer``
  (:mod:`rlhf.trl_args`: the training arguments every TRL trainer of the course shares);
- :mod:`rlhf.evaluation` — one yardstick for every policy: gold reward, KL to the reference,
  proxy reward and length on held-out prompts, with common random numbers.

Chapters 11–12 (PPO-RLHF and beyond):

- :mod:`rlhf.scoring` — the reward model's score of a response, and its normalisation into
  the reward every RL method optimises;
- :mod:`rlhf.policy_value` — policy, reference and value on one frozen base (LoRA adapters);
- :mod:`rlhf.ppo` — the course's PPO trainer for language models;
- :mod:`rlhf.memory` — the GPU memory bill of PPO-RLHF of phi-2, component by component;
- :mod:`rlhf.cli` (``rlhf-pipeline``), :mod:`rlhf.mlrun_job` — the whole pipeline from the
  command line, and as an MLRun job;
- :mod:`rlhf.kl_regularised` — the closed-form optimum of the KL-regularised objective on a toy;
- :mod:`rlhf.trl_trainers` — DPO, GRPO and RLOO through TRL (their ``*Settings`` become TRL's
  ``*Config``; the course's own algorithms take a ``*Config``);
- :mod:`rlhf.checks` — the chapters' exercise checks.
"""
