"""``rlhf-pipeline``: the whole RLHF pipeline from the command line.

SFT -> preference data -> reward model -> PPO, on the tiny world by default::

    rlhf-pipeline                                  # tiny world, CPU, a few minutes
    rlhf-pipeline --model microsoft/phi-2          # phi-2 (LoRA everywhere), on a GPU
    python -m rlhf.cli --steps 20 --set kl_coef=0.1 --set learning_rate=1e-4

Every setting comes from the model's preset (:mod:`rlhf.presets`: ``tiny``, or ``phi-2`` for
phi-2 and any other hub model); ``--set`` overrides single PPO fields. The first three stages are
cached by :mod:`rlhf.stages` (keyed by settings and code, so a fix rebuilds them), so a second run
goes straight to PPO. PPO writes ``<output-dir>/ppo/metrics.csv`` and TensorBoard logs
(``tensorboard --logdir <output-dir>/ppo``), checkpoints every ``--checkpoint-every`` steps to
``<output-dir>/ppo/checkpoints/`` and, with ``--resume``, continues from the latest one. Ctrl-C
(SIGINT) or SIGTERM (a scheduler, a closed session) stops at the end of the current step and saves
a checkpoint first; ``--resume`` picks it up.

Several processes or GPUs: build the stages once with one process (``--stages-only`` prints their
directories), then run PPO under ``accelerate`` with the same global batch::

    accelerate launch --multi_gpu --num_processes 2 -m rlhf.cli --policy SFT_DIR --reward-model RM_DIR

The preset is read from the SFT stage's record, so the launch runs with the same settings as the
stages (on a machine without GPUs it starts two CPU processes talking over gloo).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from rlhf.models import PHI2

def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["kl_coef=0.1", "kl_target=none"]`` -> typed ``PPOConfig`` field values."""
    from rlhf.ppo import PPOConfig

    hints = typing.get_type_hints(PPOConfig)
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        hint = str(hints[key])
        if raw.lower() == "none" and "None" in hint:
            out[key] = None
        elif "tuple" in hint:
            out[key] = tuple(x for x in raw.split(",") if x)
        elif hint.startswith("<class 'bool'>") or hint == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {pair!r}: {key} takes true or false")
            out[key] = raw.lower() in ("true", "1")
        elif "int" in hint and "float" not in hint:
            out[key] = int(raw)
        elif "float" in hint:
            out[key] = float(raw)
        else:
            out[key] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-pipeline", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help=f"the base causal LM: 'tiny', a hub id such as {PHI2}, or a local directory; it picks the "
                             "preset (rlhf.presets). Default: the preset recorded in --policy's stage, else 'tiny'")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/rlhf"), help="where PPO writes")
    parser.add_argument("--policy", type=Path, help="start PPO from this SFT model directory (skips the SFT stage)")
    parser.add_argument("--reward-model", type=Path, help="use this reward model directory (skips preferences and reward stages)")
    parser.add_argument("--prompts", type=Path, help="PPO prompts, one per line (default: the tiny world's training prompts)")
    parser.add_argument("--steps", type=int, help="PPO steps to run (default: the config's total_steps)")
    parser.add_argument("--seed", type=int, default=0, help="seed of PPO's sampling and minibatches")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a PPOConfig field (repeatable), e.g. --set kl_coef=0.1")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="save a checkpoint every N PPO steps (0: never)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output directory")
    parser.add_argument("--stages-only", action="store_true", help="build SFT, preferences and reward model, print them, stop")
    parser.add_argument("--no-gold", action="store_true", help="do not log the gold rater's score (saves a little time)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write the CSV log only")
    parser.add_argument("--cpu", action="store_true", help="run PPO on the CPU even if a GPU is available")
    return parser


def choose_preset(model: str | None, policy: Path | None):
    """The preset of this run: ``--model``'s, else the one recorded in ``--policy``'s stage, else ``tiny``.

    Raises:
        SystemExit: when ``--model`` and the policy's stage name different presets.
    """
    from rlhf import presets
    from rlhf.paths import stage_preset

    recorded = stage_preset(policy) if policy is not None else None
    if model is None:
        return presets.for_model(str(policy)) if recorded else presets.tiny()
    preset = presets.for_model(model)
    if recorded is not None and recorded != preset.name:
        raise SystemExit(f"--policy {policy} was built by the {recorded!r} preset but --model {model} selects "
                         f"{preset.name!r}; drop --model (the policy's preset is used) or pass a matching one")
    return preset


def build_stages(preset) -> tuple[Path, Path]:
    """SFT model and reward model directories of ``preset`` (:mod:`rlhf.stages`), built if missing."""
    from rlhf import stages

    print(f"preset {preset.name} ({preset.model})\nSFT model ...", flush=True)
    sft_dir = stages.sft_model_dir(preset)
    print(f"  {sft_dir}\npreference data and reward model ...", flush=True)
    reward_dir = stages.reward_model_dir(preset)
    print(f"  {reward_dir}", flush=True)
    return sft_dir, reward_dir


class StopRequest:
    """SIGINT/SIGTERM -> stop at the end of the current PPO step (a checkpoint is saved first).

    The first signal only sets a flag: stopping mid-step would leave a half-updated policy. Every
    process learns of it at the same step (the flag is summed over processes), so none waits alone
    in a collective. A second signal stops at once.
    """

    def __init__(self):
        import signal

        self.requested = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstop requested: finishing this PPO step, then saving a checkpoint (signal again to stop now)",
              flush=True)

    def agreed(self, accelerator) -> bool:
        """Whether any process was asked to stop."""
        import torch

        flag = torch.tensor([float(self.requested)], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def restore(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopped(Exception):
    """Raised from the per-step callback to leave ``train`` at a step boundary."""


class MetricsLog:
    """``metrics.csv`` (one row per PPO step) plus, optionally, TensorBoard through the accelerator."""

    def __init__(self, path: Path, accelerator, tensorboard: bool, history: dict[str, list[float]]):
        self.path, self.accelerator, self.tensorboard = path, accelerator, tensorboard
        self.fields: list[str] | None = None
        if accelerator.is_main_process:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)  # a resumed run rewrites the log from its checkpoint's history
            steps = len(history.get("step", []))
            for i in range(steps):
                self._write_row({key: values[i] for key, values in history.items()})
        if tensorboard:
            accelerator.init_trackers("tensorboard")

    def _write_row(self, metrics: dict[str, float]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(metrics)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow(metrics)

    def __call__(self, trainer, metrics: dict[str, float]) -> None:
        if self.accelerator.is_main_process:
            self._write_row(metrics)
        if self.tensorboard:
            self.accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=int(metrics["step"]))

    def close(self) -> None:
        if self.tensorboard:
            self.accelerator.end_training()


def run_ppo(args: argparse.Namespace, preset, sft_dir: Path, reward_dir: Path) -> None:
    """PPO from ``sft_dir`` against ``reward_dir`` with ``preset``'s settings: metrics log, checkpoints
    (also on SIGINT/SIGTERM), a summary line at the end."""
    import torch
    from accelerate import Accelerator

    from rlhf.models import load_model, load_reward_model
    from rlhf.ppo import PPOTrainer, latest_checkpoint
    from rlhf.presets import check_policy_preset

    out = args.output_dir / "ppo"
    # cpu=True also makes several processes on a machine without GPUs talk over gloo
    accelerator = Accelerator(cpu=args.cpu or not torch.cuda.is_available(), log_with=None if args.no_tensorboard else "tensorboard", project_dir=str(out))
    config = preset.ppo_config(checkpoint_every=args.checkpoint_every, **parse_overrides(args.overrides))
    check_policy_preset(sft_dir, preset)
    device = accelerator.device
    policy, tokenizer = load_model(str(sft_dir), device=device)
    reward_model, reward_tokenizer = load_reward_model(str(reward_dir), device=device)
    if args.prompts is not None:
        prompts = [line for line in args.prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        from rlhf.tiny_world import load_prompts

        prompts = load_prompts("train")
    gold_fn = None if args.no_gold else preset.gold_rater().score
    trainer = PPOTrainer(policy, tokenizer, reward_model, reward_tokenizer, prompts, config, seed=args.seed,
                         gold_fn=gold_fn, accelerator=accelerator, checkpoint_dir=out / "checkpoints")
    if args.resume:
        path = latest_checkpoint(out / "checkpoints")
        if path is None:
            accelerator.print(f"no checkpoint in {out / 'checkpoints'}: starting from step 0")
        else:
            trainer.load_checkpoint(path)
            accelerator.print(f"resumed from {path} (step {trainer.step_count})")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({**dataclasses.asdict(config), "seed": args.seed,
                                                     "policy": str(sft_dir), "reward_model": str(reward_dir),
                                                     "num_processes": accelerator.num_processes}, indent=2) + "\n")
    log = MetricsLog(out / "metrics.csv", accelerator, not args.no_tensorboard, trainer.history)
    stop = StopRequest()

    def after_step(trainer, metrics) -> None:
        log(trainer, metrics)
        if stop.agreed(accelerator):
            raise Stopped

    steps = args.steps if args.steps is not None else config.total_steps - trainer.step_count
    try:
        trainer.train(steps, progress=True, callback=after_step)
    except Stopped:
        path = trainer.save_checkpoint()
        accelerator.print(f"stopped at step {trainer.step_count}; checkpoint {path}; continue with --resume")
        return
    finally:
        stop.restore()
        log.close()  # (ends the trackers, and with them the process group)
    final = trainer.checkpoint_dir / f"step-{trainer.step_count:06d}"
    if not final.exists():  # the last step may have saved it already
        trainer.save_checkpoint()
    accelerator.print(f"PPO done: {trainer.step_count} steps; metrics in {out / 'metrics.csv'}; final checkpoint {final}")
    last = {k: round(v[-1], 4) for k, v in trainer.history.items() if k.startswith(("reward/", "kl/k1", "policy/response"))}
    accelerator.print(json.dumps({"preset": config.preset, **last}))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parse_overrides(args.overrides)  # fail on a typo before any stage runs
    preset = choose_preset(args.model, args.policy)
    if args.policy is None or args.reward_model is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # set by accelerate launch / torchrun
            raise SystemExit(
                "several processes: build the stages first with one process (`rlhf-pipeline --stages-only "
                f"--model {preset.model}`), then pass --policy and --reward-model to the accelerate launch"
            )
        sft_dir, reward_dir = build_stages(preset)
    sft_dir = args.policy or sft_dir
    reward_dir = args.reward_model or reward_dir
    if args.stages_only:
        print(json.dumps({"preset": preset.name, "policy": str(sft_dir), "reward_model": str(reward_dir)}))
        return 0
    run_ppo(args, preset, sft_dir, reward_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
