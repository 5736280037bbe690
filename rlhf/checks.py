"""Check functions for the language-model exercises (chapters 9-12).

Same machinery as :mod:`rl_basics.checks` (see :mod:`rl_basics.course.checking`): each ``check_*``
compares the learner's function with the course's reference on fresh random tensors and edge
cases and raises :class:`~rl_basics.course.checking.CheckFailed` with a hint that says what is wrong
(an off-by-one between logits and tokens, a forgotten temperature or padding mask, the score
on a padding token, a flipped sign, an unstable ``log(sigmoid(x))``...). In a notebook::

    from rlhf import checks
    checks.check_bradley_terry_loss(bradley_terry_loss)

The references are the course's own code (:mod:`rlhf.policy`, :mod:`rlhf.ppo`) where it has
them; the DPO loss, the Bradley-Terry probability and the GRPO/RLOO advantages, which the
course otherwise takes from TRL, are in the *references* section at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from rl_basics.course.checking import Case, CheckFailed, Mistake, check_function, fresh_seed, learner_check

__all__ = [
    "check_sequence_logprob",
    "check_kl_estimators",
    "check_bradley_terry_loss",
    "check_preference_probability",
    "check_kl_penalized_rewards",
    "check_response_gae",
    "check_ppo_rlhf_update",
    "check_dpo_loss",
    "check_grpo_advantages",
    "check_rloo_advantages",
    "CheckFailed",
]

ATOL, RTOL = 1e-5, 1e-4


def _rng(seed: int | None) -> tuple[np.random.Generator, int]:
    seed = fresh_seed() if seed is None else int(seed)
    return np.random.default_rng(seed), seed


def _t(x, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=dtype)


def _prefix_mask(rng, B: int, T: int, full_row: bool = True) -> torch.Tensor:
    """``(B, T)`` right-padded mask: each row a prefix of ones (at least one); one row full when asked."""
    lengths = rng.integers(1, T + 1, size=B)
    if full_row:
        lengths[0] = T
    return _t(np.arange(T)[None, :] < lengths[:, None])


# ============================================================================ chapter 9: LMs as policies


@learner_check
def check_sequence_logprob(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(logits, input_ids, response_mask, temperature) -> (B,)``: log pi(response | prompt).

    ``logits (B, L, V)`` is the model's output for ``input_ids (B, L)`` (prompt + response):
    ``logits[:, t]`` is the distribution of the *next* token, ``input_ids[:, t + 1]``.
    ``response_mask (B, L)`` is 1 on the response tokens (never on position 0). The answer sums
    ``log softmax(logits[:, t - 1] / temperature)[input_ids[:, t]]`` over the response tokens.
    Reference: :func:`rlhf.tokens.token_logprobs`.
    """
    from rlhf.tokens import token_logprobs

    rng, seed = _rng(seed)

    class Logits(torch.nn.Module):  # a stand-in model that returns the given logits
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
            return SimpleNamespace(logits=self.logits)

    def reference(logits, ids, mask, temperature):
        logp = token_logprobs(Logits(logits), ids, torch.ones_like(ids), temperature)
        return (logp * mask).sum(-1)

    def variant(logits, ids, mask, temperature, shift=True, temp=True, use_mask=True, log=True):
        scaled = logits / temperature if temp else logits
        table = F.log_softmax(scaled, -1) if log else F.softmax(scaled, -1)
        if shift:
            picked = F.pad(table[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1), (1, 0))
        else:
            picked = table.gather(-1, ids[:, :, None]).squeeze(-1)
        return (picked * (mask if use_mask else torch.ones_like(mask))).sum(-1)

    cases = []
    for B, L, V, T in ((3, 7, 11, 1.0), (4, 9, 17, 0.7), (2, 5, 6, 1.5)):
        ids = torch.tensor(rng.integers(0, V, size=(B, L)))
        prompt_len = rng.integers(1, L - 1, size=B)
        resp_len = [int(rng.integers(1, L - p + 1)) for p in prompt_len]
        mask = _t([[1.0 if p <= t < p + n else 0.0 for t in range(L)] for p, n in zip(prompt_len, resp_len)])
        cases.append(Case(f"random logits, B={B} sequences of L={L} tokens, vocabulary {V}, temperature={T}, "
                          "padding after some responses", (_t(rng.normal(size=(B, L, V)) * 2), ids, mask, T)))
    cases.append(Case("edge case: a batch of one, its response a single token at the very end, temperature=0.8",
                      (_t(np.sin(np.arange(30.0)).reshape(1, 5, 6) * 3), torch.tensor([[1, 4, 2, 0, 5]]),
                       _t([[0, 0, 0, 0, 1]]), 0.8)))
    mistakes = [
        Mistake("off by one between logits and tokens: logits[:, t] predicts the *next* token input_ids[:, t + 1], "
                "so the log-prob of input_ids[:, t] comes from logits[:, t - 1].",
                lambda lg, ids, m, T: variant(lg, ids, m, T, shift=False)),
        Mistake("the temperature is missing: divide the logits by it before the log-softmax (the sampler did).",
                lambda lg, ids, m, T: variant(lg, ids, m, T, temp=False)),
        Mistake("you multiply the logits by the temperature; divide them.",
                lambda lg, ids, m, T: variant(lg * T * T, ids, m, T)),
        Mistake("the response mask is ignored: prompt and padding tokens are summed too.",
                lambda lg, ids, m, T: variant(lg, ids, m, T, use_mask=False)),
        Mistake("you sum probabilities (softmax), not log-probabilities (log_softmax).",
                lambda lg, ids, m, T: variant(lg, ids, m, T, log=False)),
        Mistake("you average the log-probs over the response; log pi(response) is their *sum*.",
                lambda lg, ids, m, T: reference(lg, ids, m, T) / m.sum(-1)),
    ]
    check_function(fn, reference, cases, exercise="the response log-probability", mistakes=mistakes, seed=seed,
                   arg_names=("logits", "input_ids", "response_mask", "temperature"),
                   atol=ATOL, rtol=RTOL, grad_args=(0,))


@learner_check
def check_kl_estimators(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(logprobs, ref_logprobs) -> (k1, k3)``: per-token estimates of KL(pi || pi_ref).

    At sampled tokens, with ``log_ratio = logprobs - ref_logprobs``: ``k1 = log_ratio`` and
    ``k3 = (rho - 1) - log rho`` with ``rho = pi_ref / pi = exp(-log_ratio)``. Both elementwise,
    shaped like the inputs. Reference: :func:`rlhf.policy.kl_per_token`.
    """
    from rlhf.policy import kl_per_token

    rng, seed = _rng(seed)

    def reference(lp, ref):
        return kl_per_token(lp, ref, "k1"), kl_per_token(lp, ref, "k3")

    cases = []
    for B, T in ((3, 6), (5, 11)):
        ref = -rng.exponential(size=(B, T)) * 2
        cases.append(Case(f"random log-probs, B={B} x T={T}", (_t(ref + rng.normal(scale=0.7, size=(B, T))), _t(ref))))
    cases.append(Case("edge case: identical policies (both estimates 0)", (_t([[-1.0, -2.0]]), _t([[-1.0, -2.0]]))))
    mistakes = [
        Mistake("the log-ratio has the wrong sign: KL(pi || pi_ref) uses log pi - log pi_ref (k1), and k3 uses "
                "rho = pi_ref / pi.", lambda lp, ref: reference(ref, lp)),
        Mistake("k3 uses rho = pi / pi_ref; for KL(pi || pi_ref) estimated on samples from pi it is "
                "rho = pi_ref / pi = exp(ref_logprobs - logprobs).",
                lambda lp, ref: (lp - ref, torch.expm1(lp - ref) - (lp - ref))),
        Mistake("that is k2 = 0.5 * log_ratio**2 (biased); the exercise asks for k3 = (rho - 1) - log rho.",
                lambda lp, ref: (lp - ref, 0.5 * (lp - ref) ** 2)),
        Mistake("k1 and k3 are swapped in the returned tuple.", lambda lp, ref: reference(lp, ref)[::-1]),
    ]
    check_function(fn, reference, cases, exercise="the per-token KL estimators", mistakes=mistakes, seed=seed,
                   arg_names=("logprobs", "ref_logprobs"),
                   atol=ATOL, rtol=RTOL)


# ============================================================================ chapter 10: reward modelling


@learner_check
def check_bradley_terry_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(r_chosen, r_rejected) -> loss``: the Bradley-Terry (pairwise) reward-model loss.

    ``loss = -mean(log sigmoid(r_chosen - r_rejected))`` over the ``(B,)`` pairs, computed
    stably (``F.logsigmoid``: ``log(torch.sigmoid(x))`` underflows to ``-inf`` for very negative x).
    """
    rng, seed = _rng(seed)
    cases = [Case(f"random reward scores of {B} pairs", (_t(rng.normal(size=B) * 2), _t(rng.normal(size=B) * 2)))
             for B in (8, 21)]
    cases += [
        Case("edge case: equal scores (loss log 2)", (_t([0.5, -1.0]), _t([0.5, -1.0]))),
        Case("edge case: huge margins, right and wrong (+-200)", (_t([200.0, -100.0]), _t([0.0, 100.0]))),
        Case("edge case: large margins, right and wrong (+-30)", (_t([15.0, -15.0]), _t([-15.0, 15.0]))),
        Case("edge case: a batch of one", (_t([1.5]), _t([-0.5]))),
    ]
    mistakes = [
        Mistake("chosen and rejected are swapped: the model should give the *chosen* response the higher "
                "score, so the loss uses r_chosen - r_rejected.", lambda c, r: bradley_terry_loss(r, c)),
        Mistake("you sum over the batch; average it (mean), so the loss does not grow with the batch size.",
                lambda c, r: bradley_terry_loss(c, r) * c.numel()),
        Mistake("you use sigmoid without the log: the loss is the negative log-likelihood -log sigmoid(margin).",
                lambda c, r: -torch.sigmoid(c - r).mean()),
    ]
    check_function(fn, bradley_terry_loss, cases, exercise="the Bradley-Terry loss", mistakes=mistakes, seed=seed,
                   atol=ATOL, rtol=RTOL, grad_args=(0, 1))


@learner_check
def check_preference_probability(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(score_a, score_b, beta) -> P(a preferred over b)``: the Bradley-Terry annotator.

    ``P(a > b) = sigmoid(beta * (score_a - score_b))``, elementwise on numpy arrays (the
    simulated annotator :class:`rlhf.gold.Annotator` labels pairs with it).
    """
    rng, seed = _rng(seed)
    cases = [Case(f"random gold scores of {n} pairs, beta={b}", (rng.random(n), rng.random(n), b))
             for n, b in ((6, 10.0), (15, 3.0))]
    cases += [
        Case("edge case: beta = 0 (a coin flip)", (np.array([0.9, 0.1]), np.array([0.1, 0.9]), 0.0)),
        Case("edge case: equal scores", (np.array([0.4]), np.array([0.4]), 10.0)),
        Case("edge case: huge beta * gaps (+-800 and +-30): the probabilities must stay finite, in [0, 1]",
             (np.array([0.9, 0.1, 0.53]), np.array([0.1, 0.9, 0.5]), 1000.0)),
    ]
    mistakes = [
        Mistake("a and b are swapped: a higher score_a must make 'a preferred' more likely.",
                lambda a, b, beta: preference_probability(b, a, beta)),
        Mistake("beta is missing: it scales the score difference (beta = 0 is a coin flip, large beta a careful annotator).",
                lambda a, b, beta: preference_probability(a, b, 1.0)),
        Mistake("you divide by beta; multiply the score difference by it.",
                lambda a, b, beta: preference_probability(a, b, 1.0 / beta) if beta else np.full(np.shape(a), np.nan)),
    ]
    check_function(fn, preference_probability, cases, exercise="the Bradley-Terry preference probability",
                   mistakes=mistakes, seed=seed)


# ============================================================================ chapter 11: PPO-RLHF


def _rlhf_batch(rng, B, T):
    mask = _prefix_mask(rng, B, T)
    ref = -rng.exponential(size=(B, T)) * 2
    return (_t(rng.normal(size=B)), _t(ref + rng.normal(scale=0.5, size=(B, T))), _t(ref), mask)


@learner_check
def check_kl_penalized_rewards(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(scores, logprobs, ref_logprobs, mask, kl_coef) -> rewards (B, T)``: PPO-RLHF's per-token rewards.

    ``r_t = -kl_coef * (logprobs_t - ref_logprobs_t)`` on real response tokens, 0 on padding,
    plus the reward model's ``scores[b]`` added at the *last real token* of row ``b``. ``mask
    (B, T)`` is 1 on real tokens, a prefix of each row (right padding). Reference:
    :func:`rlhf.ppo.per_token_rewards` (k1 estimator).
    """
    from rlhf.ppo import per_token_rewards

    rng, seed = _rng(seed)

    def reference(s, lp, ref, m, c):
        return per_token_rewards(s, lp, ref, m, c, "k1")[0]

    def kl_part(lp, ref, m, c):
        return -c * (lp - ref) * m

    def at(col_fn):
        def variant(s, lp, ref, m, c):
            out = kl_part(lp, ref, m, c)
            out[torch.arange(len(s)), col_fn(m)] += s
            return out
        return variant

    cases = [Case(f"random batch of {B} responses, up to {T} tokens, right-padded, kl_coef={c}",
                  (*_rlhf_batch(rng, B, T), c)) for B, T, c in ((4, 7, 0.1), (6, 12, 0.05))]
    s, lp, ref, _ = _rlhf_batch(rng, 3, 5)
    cases.append(Case("edge case: one-token responses and a full-length one",
                      (s, lp, ref, _t([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]), 0.2)))
    cases.append(Case("edge case: a batch of one response of 3 tokens, padded to 5",
                      (_t([2.0]), _t([[-1.0, -0.5, -2.0, -0.1, -0.3]]), _t([[-1.5, -0.5, -1.0, -3.0, -3.0]]),
                       _t([[1, 1, 1, 0, 0]]), 0.1)))
    mistakes = [
        Mistake("the score is added at the last column, which is padding for shorter responses: add it at each "
                "row's last *real* token (index mask.sum(-1) - 1).", at(lambda m: torch.full((m.shape[0],), m.shape[1] - 1))),
        Mistake("the score is added at the first response token; the reward model judges the finished response, "
                "so it belongs at the last real token.", at(lambda m: torch.zeros(m.shape[0], dtype=torch.long))),
        Mistake("off by one: the score goes one token after the last real one (index mask.sum(-1) - 1, not mask.sum(-1)).",
                at(lambda m: m.sum(-1).long().clamp(max=m.shape[1] - 1))),
        Mistake("the KL penalty has the wrong sign: the reward is *minus* kl_coef * (logprobs - ref_logprobs), "
                "so drifting from the reference costs reward.", lambda s, lp, ref, m, c: reference(s, ref, lp, m, c)),
        Mistake("padding tokens get a KL penalty: multiply the per-token KL by the mask.",
                lambda s, lp, ref, m, c: reference(s, lp, ref, m, c) + kl_part(lp, ref, 1 - m, c)),
        Mistake("the score is added to every real token; it is given once, at the last real token.",
                lambda s, lp, ref, m, c: kl_part(lp, ref, m, c) + s[:, None] * m),
        Mistake("kl_coef is missing.", lambda s, lp, ref, m, c: reference(s, lp, ref, m, 1.0)),
    ]
    check_function(fn, reference, cases, exercise="the KL-penalised per-token rewards", mistakes=mistakes, seed=seed,
                   arg_names=("scores", "logprobs", "ref_logprobs", "mask", "kl_coef"),
                   atol=ATOL, rtol=RTOL)


@learner_check
def check_response_gae(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, values, mask, gamma, lam) -> advantages (B, T)``: GAE over response tokens.

    Rows are responses (batch on axis 0, tokens on axis 1: the transpose of chapter 7's
    layout), right-padded, ``mask`` 1 on real tokens. The episode ends at each row's last real
    token: no bootstrapping from the value of a padding token and no recursion across it. The
    advantages are 0 on padding. Reference: :func:`rlhf.ppo.response_advantages` (built on
    :func:`rl_basics.agents.losses.compute_gae`).
    """
    from rl_basics.agents.losses import compute_gae
    from rlhf.ppo import response_advantages

    rng, seed = _rng(seed)

    def reference(r, v, m, g, lam):
        return response_advantages(r * m, v, m, g, lam)[0] * m

    def unmasked(r, v, m, g, lam):  # bootstraps into the padding, and the recursion runs through it
        return response_advantages(r * m, v, torch.ones_like(m), g, lam)[0] * m

    def along_batch(r, v, m, g, lam):
        end = torch.zeros_like(r)
        end[-1] = 1.0
        nv = torch.cat([v[1:], torch.zeros_like(v[:1])])
        return compute_gae(r * m, v, nv, end, end, g, lam)[0] * m

    cases = []
    for B, T, g, lam in ((4, 8, 1.0, 0.95), (3, 10, 0.9, 0.8), (5, 6, 1.0, 0.5)):
        m = _prefix_mask(rng, B, T)
        r = _t(rng.normal(size=(B, T))) * m
        cases.append(Case(f"random rewards and values (values non-zero on padding too), B={B} x T={T}, "
                          f"gamma={g}, lam={lam}", (r, _t(rng.normal(size=(B, T))), m, g, lam)))
    m = _t([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    cases.append(Case("edge case: responses of 2, 1 and 4 tokens, large values on padding",
                      (_t([[0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, -1.0]]), _t([[0.5, 0.2, 9.0, 9.0], [0.1, 9.0, 9.0, 9.0],
                                                                                  [0.3, 0.1, 0.2, 0.4]]), m, 1.0, 0.95)))
    cases.append(Case("edge case: a batch of one response of 3 tokens, padded to 4, gamma=0.9",
                      (_t([[0.0, 0.5, 1.0, 0.0]]), _t([[0.2, -0.4, 0.3, 9.0]]), _t([[1, 1, 1, 0]]), 0.9, 0.8)))
    mistakes = [
        Mistake("padding leaks in: at the last real token do not bootstrap from the next (padding) value, and do not "
                "let the recursion run through padding.", unmasked),
        Mistake("the advantages on padding must be 0 (multiply by the mask).",
                lambda r, v, m, g, lam: response_advantages(r * m, v, m, g, lam)[0]),
        Mistake("time runs along axis 1 here (tokens), not axis 0: rows are responses.", along_batch),
        Mistake("lam is missing in the recursion (that is lam = 1).", lambda r, v, m, g, lam: reference(r, v, m, g, 1.0)),
        Mistake("the recursion runs forward; GAE accumulates *future* TD errors: loop from the last token back.",
                lambda r, v, m, g, lam: _forward_gae(r, v, m, g, lam)),
        Mistake("you return the returns (advantages + values); this exercise returns the advantages.",
                lambda r, v, m, g, lam: response_advantages(r * m, v, m, g, lam)[1] * m),
    ]
    check_function(fn, reference, cases, exercise="GAE over response tokens", mistakes=mistakes, seed=seed,
                   arg_names=("rewards", "values", "mask", "gamma", "lam"),
                   atol=ATOL, rtol=RTOL)


def _forward_gae(r, v, m, g, lam):
    nv = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1) * torch.cat([m[:, 1:], torch.zeros_like(m[:, :1])], 1)
    delta = (r + g * nv - v) * m
    out, run = torch.zeros_like(delta), torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1]):
        run = delta[:, t] + g * lam * run
        out[:, t] = run
    return out * m


# ============================================================================ chapter 11: one PPO-RLHF update


def _tiny_ppo_trainer(seed: int):
    """A PPO trainer on a random tiny Phi and reward model (nothing from the tiny world's stages): 8 prompts per
    step, 2 minibatches x 3 epochs, responses of up to 8 tokens, its policy adapter moved off the reference."""
    from transformers import PhiForCausalLM, PhiForSequenceClassification

    from rlhf import corpus
    from rlhf.ppo import PPOConfig, PPOTrainer
    from rlhf.tiny_world import TinyWorldConfig, tiny_phi_config, train_tokenizer

    tokenizer = _tiny_tokenizer(train_tokenizer, corpus)
    shape = tiny_phi_config(tokenizer, TinyWorldConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                       num_attention_heads=2, max_position_embeddings=128))
    torch.manual_seed(seed)
    policy = PhiForCausalLM(shape).eval()
    with torch.no_grad():
        policy.lm_head.bias[tokenizer.eos_token_id] = 4.0  # responses end at mixed lengths: padding to mask
    shape.num_labels = 1
    reward_model = PhiForSequenceClassification(shape).eval()
    # a large learning rate and a small gradient-norm limit, so that the ratio leaves the clip range and the norm
    # is clipped: otherwise an update without either would give the same weights
    config = PPOConfig(batch_size=8, num_minibatches=2, update_epochs=3, total_steps=4, max_new_tokens=8,
                       normalize_reward=False, lora_r=4, lora_alpha=8, learning_rate=3e-2, max_grad_norm=0.05)
    prompts = corpus.generate_prompts(16, 4, seed)[0]
    trainer = PPOTrainer(policy, tokenizer, reward_model, tokenizer, prompts, config, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the policy moved away from the reference, as after some training: pi_old != pi_ref
        for name, param in trainer.policy_value.named_parameters():
            if "lora_B" in name and ".policy." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return trainer


_TOKENIZER: list = []


def _tiny_tokenizer(train_tokenizer, corpus):
    if not _TOKENIZER:  # trained once per session
        _TOKENIZER.append(train_tokenizer(corpus.generate_reviews(200, 0), vocab_size=300, max_length=64))
    return _TOKENIZER[0]


def _reference_update(trainer, batch, step: int, *, whiten: bool = True, returns_from_raw: bool = True,
                      old: str = "logprobs", clip: bool = True, use_mask: bool = True, zero_grad: bool = True,
                      clip_grad: bool = True, epochs: int | None = None, minibatches: bool = True) -> None:
    """The update half of :meth:`rlhf.ppo.PPOTrainer.step`, written out, each flag off giving a known mistake."""
    from rl_basics.agents.losses import masked_mean, masked_whiten
    from rlhf.ppo import per_token_rewards, response_advantages

    cfg = trainer.config
    mask = batch.mask.float()
    rewards, _ = per_token_rewards(batch.scores, batch.logprobs, batch.ref_logprobs, batch.mask, trainer.kl_ctl.value)
    advantages, returns = response_advantages(rewards, batch.values, batch.mask, cfg.gamma, cfg.gae_lambda)
    if whiten:
        advantages = masked_whiten(advantages, mask)
    if not returns_from_raw:
        returns = advantages + batch.values
    R = mask.shape[1]
    mean = (lambda x, m: masked_mean(x, m)) if use_mask else (lambda x, m: x.mean())
    for epoch in range(cfg.update_epochs if epochs is None else epochs):
        for rows in trainer.minibatches(step, epoch) if minibatches else [torch.arange(len(mask))]:
            m = mask[rows]
            logprobs, _, values = trainer.model(batch.input_ids[rows], batch.attention_mask[rows], R, cfg.temperature,
                                                None if batch.value_features is None else batch.value_features[rows])
            ratio = torch.exp(logprobs - getattr(batch, old)[rows])
            a = advantages[rows]
            surrogate = -a * ratio
            if clip:
                surrogate = torch.max(surrogate, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
            old_v, target = batch.values[rows], returns[rows]
            v_clipped = old_v + (values - old_v).clamp(-cfg.clip_coef_vf, cfg.clip_coef_vf)
            value_loss = 0.5 * mean(torch.max((values - target) ** 2, (v_clipped - target) ** 2), m)
            loss = mean(surrogate, m) + cfg.vf_coef * value_loss
            if zero_grad:
                trainer.optimizer.zero_grad()
            loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(trainer.policy_value.trainable_parameters(), cfg.max_grad_norm)
            trainer.optimizer.step()


_UPDATE_MISTAKES = [
    ("the advantages are not whitened: normalise them over the batch's real tokens (masked_whiten) before the epochs, "
     "as chapter 8 did.", dict(whiten=False)),
    ("the value targets come from the whitened advantages: compute returns = advantages + values *before* whitening "
     "(whitening rescales the advantages, not the returns the critic must predict).", dict(returns_from_raw=False)),
    ("the ratio compares the policy with the reference (ref_logprobs): PPO's ratio is pi_new / pi_old, the policy that "
     "sampled the batch (batch.logprobs).", dict(old="ref_logprobs")),
    ("the policy loss is not clipped: take max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)).", dict(clip=False)),
    ("the losses average over padding too: average over the real tokens only (the mask).", dict(use_mask=False)),
    ("the gradients are never zeroed, so each minibatch adds to the last one's: call optimizer.zero_grad() before "
     "each backward pass.", dict(zero_grad=False)),
    ("the gradient norm is not clipped: torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm) before "
     "optimizer.step().", dict(clip_grad=False)),
    ("only one pass over the batch: PPO reuses it for config.update_epochs epochs.", dict(epochs=1)),
    ("the whole batch is one minibatch: each epoch goes through trainer.minibatches(step, epoch), one optimizer step "
     "per minibatch.", dict(minibatches=False)),
]


_RESULTS: dict[tuple[int, str], torch.Tensor] = {}
"""Weight changes of the package's update and of each known mistake, per seed (they never change: computed once)."""
_BATCHES: dict[int, object] = {}


def _weight_change(seed: int, update: Callable, key: str | None = None) -> torch.Tensor:
    """The change of every trainable weight ``[n]`` when ``update(trainer, batch)`` trains a fresh tiny trainer
    on its first rollout (the same batch for every update of one seed)."""
    import dataclasses

    if key is not None and (seed, key) in _RESULTS:
        return _RESULTS[(seed, key)]
    trainer = _tiny_ppo_trainer(seed)
    if seed not in _BATCHES:
        _BATCHES[seed] = trainer.rollout(0)
    batch = _BATCHES[seed]
    batch = dataclasses.replace(batch, **{f.name: getattr(batch, f.name).clone() for f in dataclasses.fields(batch)
                                         if isinstance(getattr(batch, f.name), torch.Tensor)})
    before = torch.cat([p.detach().flatten().clone() for p in trainer.policy_value.trainable_parameters()])
    update(trainer, batch)
    change = torch.cat([p.detach().flatten() for p in trainer.policy_value.trainable_parameters()]) - before
    if key is not None:
        _RESULTS[(seed, key)] = change
    return change


def _package_update(trainer, batch) -> None:
    """:meth:`rlhf.ppo.PPOTrainer.step`'s update half, as the trainer runs it."""
    from rl_basics.agents.losses import masked_whiten
    from rlhf.ppo import per_token_rewards, response_advantages

    cfg = trainer.config
    rewards, _ = per_token_rewards(batch.scores, batch.logprobs, batch.ref_logprobs, batch.mask, trainer.kl_ctl.value)
    advantages, returns = response_advantages(rewards, batch.values, batch.mask, cfg.gamma, cfg.gae_lambda)
    trainer.ppo_update(batch, masked_whiten(advantages, batch.mask), returns, 0)


@learner_check
def check_ppo_rlhf_update(fn: Callable, kl_rewards: Callable | None = None, gae: Callable | None = None, *,
                          seed: int | None = None) -> None:
    """Check ``fn(trainer, batch, step, kl_rewards, gae)``: the update half of one PPO-RLHF step.

    Two identical trainers (a random tiny Phi, 8 prompts, 2 minibatches x 3 epochs, the policy moved off
    the reference) get the same batch; one is updated as :meth:`rlhf.ppo.PPOTrainer.step` does, the
    other by ``fn``, and their trained weights must agree. ``kl_rewards`` and ``gae`` are handed to
    ``fn``: the learner's own ``kl_penalized_rewards`` and ``response_gae`` (Exercises 11.1 and
    11.2), or None for the course's (:func:`rlhf.ppo.per_token_rewards`,
    :func:`rlhf.ppo.response_advantages`). When the weights differ, they are compared with those
    of known mistakes (no whitening, returns from whitened advantages, the ratio to the reference,
    no clipping, padding averaged in, gradients not zeroed, ...).
    """
    from rlhf.ppo import per_token_rewards, response_advantages

    _, seed = _rng(seed)
    kl_rewards = kl_rewards or (lambda s, lp, ref, m, c: per_token_rewards(s, lp, ref, m, c)[0])
    gae = gae or (lambda r, v, m, g, lam: response_advantages(r, v, m, g, lam)[0])
    expected = _weight_change(seed, _package_update, key="package")
    try:
        got = _weight_change(seed, lambda trainer, batch: fn(trainer, batch, 0, kl_rewards, gae))
    except NotImplementedError as err:
        raise CheckFailed(f"one PPO-RLHF update: not done yet ({err})") from err
    except Exception as err:
        raise CheckFailed(f"one PPO-RLHF update: your function raised {type(err).__name__}: {err}") from err

    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool((a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-7)

    if close(got, expected):
        print(f"✅ one PPO-RLHF update: your weights match the trainer's after 8 responses x 3 epochs x "
              f"2 minibatches (seed={seed}).")
        return
    if not got.abs().max() > 0:
        raise CheckFailed(f"one PPO-RLHF update (seed={seed}): your update changed no weight: each minibatch needs "
                          "loss.backward() and trainer.optimizer.step().")
    for hint, flags in _UPDATE_MISTAKES:
        mistake = _weight_change(seed, lambda trainer, batch: _reference_update(trainer, batch, 0, **flags),
                                 key=repr(flags))
        if close(got, mistake):
            raise CheckFailed(f"one PPO-RLHF update (seed={seed}): {hint}")
    raise CheckFailed(
        f"one PPO-RLHF update (seed={seed}): your trained weights differ from the trainer's by up to "
        f"{(got - expected).abs().max().item():.2e} (its largest weight change is {expected.abs().max().item():.2e}). "
        "The order: rewards (kl_rewards) -> advantages (gae) -> returns = advantages + values -> whiten the advantages "
        "-> for each epoch, for each minibatch of trainer.minibatches(step, epoch): clipped policy loss + vf_coef * "
        "clipped value loss, averaged over real tokens; zero_grad, backward, clip the gradient norm, step.")


# ============================================================================ chapter 12: beyond PPO


@learner_check
def check_dpo_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> loss``: the DPO loss.

    The arguments are ``(B,)`` sequence log-probabilities of the chosen and rejected responses
    under the policy and the frozen reference. With the implicit rewards
    ``beta * (policy - ref)``: ``loss = -mean(log sigmoid(beta * ((pc - rc) - (pr - rr))))``,
    computed stably (``F.logsigmoid``).
    """
    rng, seed = _rng(seed)
    cases = []
    for B, beta in ((8, 0.1), (16, 0.5)):
        ref = -rng.exponential(size=(2, B)) * 20
        pol = ref + rng.normal(scale=2.0, size=(2, B))
        cases.append(Case(f"random sequence log-probs of {B} pairs, beta={beta}", (_t(pol[0]), _t(pol[1]), _t(ref[0]), _t(ref[1]), beta)))
    cases += [
        Case("edge case: policy == reference (loss log 2)", (_t([-5.0, -9.0]), _t([-7.0, -3.0]), _t([-5.0, -9.0]), _t([-7.0, -3.0]), 0.1)),
        Case("edge case: huge margins (+-2000 nats, beta=1)", (_t([0.0, -2000.0]), _t([-2000.0, 0.0]), _t([-1000.0, -1000.0]), _t([-1000.0, -1000.0]), 1.0)),
        Case("edge case: large margins (+-30 nats, beta=1)", (_t([-10.0, -40.0]), _t([-40.0, -10.0]), _t([-25.0, -25.0]), _t([-25.0, -25.0]), 1.0)),
        Case("edge case: a batch of one", (_t([-12.0]), _t([-15.0]), _t([-13.0]), _t([-14.0]), 0.5)),
    ]
    mistakes = [
        Mistake("the reference model is missing: DPO's implicit reward is beta * (log pi - log pi_ref); subtract "
                "the reference log-probs.", lambda pc, pr, rc, rr, b: dpo_loss(pc, pr, torch.zeros_like(rc), torch.zeros_like(rr), b)),
        Mistake("chosen and rejected are swapped: the margin is (chosen log-ratio) - (rejected log-ratio).",
                lambda pc, pr, rc, rr, b: dpo_loss(pr, pc, rr, rc, b)),
        Mistake("the reference log-probs are added instead of subtracted: log-ratio = policy - reference.",
                lambda pc, pr, rc, rr, b: dpo_loss(pc, pr, -rc, -rr, b)),
        Mistake("beta is missing (it scales the margin inside the sigmoid).", lambda pc, pr, rc, rr, b: dpo_loss(pc, pr, rc, rr, 1.0)),
        Mistake("beta multiplies the loss instead of the margin inside the sigmoid.",
                lambda pc, pr, rc, rr, b: b * dpo_loss(pc, pr, rc, rr, 1.0)),
    ]
    check_function(fn, dpo_loss, cases, exercise="the DPO loss", mistakes=mistakes, seed=seed, atol=ATOL, rtol=RTOL,
                   grad_args=(0, 1))


def _group_cases(rng) -> list[Case]:
    cases = []
    for n, G in ((3, 4), (5, 8), (2, 16)):
        cases.append(Case(f"random rewards of {n} prompts x {G} completions (each prompt's group contiguous)",
                          (_t(rng.normal(size=n * G) + np.repeat(rng.normal(size=n) * 3, G)), G)))
    cases.append(Case("edge case: a group whose completions all got the same reward (no signal: advantages 0)",
                      (_t([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0, 5.0]), 4)))
    cases.append(Case("edge case: one prompt with the smallest group, two completions", (_t([1.0, 3.0]), 2)))
    return cases


@learner_check
def check_grpo_advantages(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, group_size) -> advantages``: GRPO's group-normalised advantages.

    ``rewards (n * G,)`` holds ``G = group_size`` completions per prompt, each prompt's group
    contiguous (TRL's layout). ``A_i = (r_i - mean_group) / (std_group + 1e-4)`` with the
    *sample* standard deviation (``torch.std``'s default, as TRL); a group with equal rewards
    gets advantages 0.
    """
    rng, seed = _rng(seed)
    mistakes = [
        Mistake("you normalise over the whole batch; GRPO normalises within each prompt's group of completions.",
                lambda r, G: (r - r.mean()) / (r.std() + 1e-4)),
        Mistake("the groups are taken the wrong way: a prompt's completions are *contiguous*, "
                "rewards.view(-1, group_size), not strided.",
                lambda r, G: grpo_advantages(r.view(G, -1).T.reshape(-1), r.numel() // G).view(-1, G).T.reshape(-1)),
        Mistake("you use the population std (unbiased=False / ddof=0); TRL and this course use the sample std, torch.std's default.",
                lambda r, G: (r.view(-1, G) - r.view(-1, G).mean(1, keepdim=True)).div(r.view(-1, G).std(1, unbiased=False, keepdim=True) + 1e-4).view(-1)),
        Mistake("you only subtract the group mean; GRPO also divides by the group's std.",
                lambda r, G: (r.view(-1, G) - r.view(-1, G).mean(1, keepdim=True)).view(-1)),
        Mistake("the group mean is not subtracted; an advantage says how much better than the group a completion did.",
                lambda r, G: (r.view(-1, G) / (r.view(-1, G).std(1, keepdim=True) + 1e-4)).view(-1)),
    ]
    check_function(fn, grpo_advantages, _group_cases(rng), exercise="the GRPO advantages", mistakes=mistakes, seed=seed,
                   atol=1e-3, rtol=1e-3)


@learner_check
def check_rloo_advantages(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, group_size) -> advantages``: RLOO's leave-one-out advantages.

    Same layout as :func:`check_grpo_advantages`. Each completion's baseline is the mean reward
    of the *other* ``G - 1`` completions of its prompt: ``A_i = r_i - (sum_group - r_i) / (G - 1)``.
    """
    rng, seed = _rng(seed)
    mistakes = [
        Mistake("the baseline includes the completion itself: leave it out (the mean of the other G - 1).",
                lambda r, G: (r.view(-1, G) - r.view(-1, G).mean(1, keepdim=True)).view(-1)),
        Mistake("the groups are taken the wrong way: a prompt's completions are contiguous, rewards.view(-1, group_size).",
                lambda r, G: rloo_advantages(r.view(G, -1).T.reshape(-1), r.numel() // G).view(-1, G).T.reshape(-1)),
        Mistake("you subtract the batch mean; the baseline is the mean of the other completions of the same prompt.",
                lambda r, G: r - r.mean()),
    ]
    check_function(fn, rloo_advantages, _group_cases(rng), exercise="the RLOO advantages", mistakes=mistakes, seed=seed,
                   atol=ATOL, rtol=RTOL)


# ============================================================================ references
# Formulas the course otherwise takes from TRL (its trainers compute them internally).


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """``-mean(logsigmoid(r_chosen - r_rejected))`` (TRL's ``RewardTrainer`` loss)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def preference_probability(score_a, score_b, beta: float):
    """``sigmoid(beta * (score_a - score_b))``, numpy, as :class:`rlhf.gold.Annotator`."""
    x = beta * (np.asarray(score_a, dtype=float) - np.asarray(score_b, dtype=float))
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """The sigmoid DPO loss (Rafailov et al. 2023; TRL's ``DPOTrainer`` default)."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def grpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(r - group mean) / (group sample std + 1e-4)``, groups contiguous (TRL's ``GRPOTrainer``)."""
    grouped = rewards.view(-1, group_size)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``r_i - mean of the other completions of the same prompt``."""
    grouped = rewards.view(-1, group_size)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - baseline).view(-1)
