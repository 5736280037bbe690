"""The cached stages of the RLHF pipeline, for any preset: SFT policy, preference data, reward model.

    >>> from rlhf import stages
    >>> stages.sft_model_dir()                       # the tiny world's SFT policy, chapter 9
    >>> stages.preference_dataset_path()             # annotator-labelled pairs, chapter 10
    >>> stages.reward_model_dir()                    # reward model, chapter 10
    >>> stages.reward_model_dir(presets.phi2())      # the same pipeline for phi-2 (LoRA), on a GPU

Each stage is built on first use into ``<preset.stage_root()>/<stage>-<key>`` (see
:func:`rlhf.paths.cached_artifact`: atomic, one builder at a time). The key covers the stage's
settings, the gold rater that labels the pairs, the identity of its inputs (the base model's
weights, the previous stage's record), the code that builds it (:data:`STAGE_SOURCES`) and the
versions of torch, transformers and trl: after a fix or an upgrade the stage is rebuilt, never
silently reused from older code. Every stage records its preset and base model in ``stage.json``,
which is how ``rlhf-pipeline --policy DIR`` (and ``accelerate launch``) find the preset again.

Build all three from the command line: ``python -m rlhf.stages build [--model microsoft/phi-2]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from rlhf.paths import cached_artifact
from rlhf.presets import ModelPreset, for_model, tiny

STAGE_SOURCES = ("corpus.py", "gold.py", "models.py", "policy.py", "preferences.py", "reward.py", "sft.py",
                 "stages.py", "tiny_world.py", "tokens.py", "trl_args.py")
"""The ``rlhf`` modules whose code builds the cached stages; their source is part of every stage's key."""


def _code_identity() -> bytes:
    """What the stages' contents depend on besides their settings: the building code and library versions."""
    import transformers
    import trl

    here = Path(__file__).resolve().parent
    versions = f"torch {torch.__version__} transformers {transformers.__version__} trl {trl.__version__}"
    return b"".join((here / name).read_bytes() for name in STAGE_SOURCES) + versions.encode()


def _base_identity(model: str) -> bytes:
    """The identity of a base model's weights: the tiny world's build record, a local directory's
    config and weight files (name and size), or a hub model's id and snapshot commit (not the cache's
    path: the same snapshot in another cache, or a moved cache, is the same base)."""
    from rlhf.models import resolve_model_name

    resolved = Path(resolve_model_name(model))
    if resolved.is_dir():
        marker = resolved / "build_info.json"
        if marker.is_file():
            return marker.read_bytes()
        files = sorted(p for p in resolved.iterdir() if p.suffix in (".json", ".safetensors"))
        return b"".join(f"{p.name}:{p.stat().st_size}".encode() for p in files) + (resolved / "config.json").read_bytes()
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(str(resolved), "config.json")
    revision = Path(cached).parent.name if isinstance(cached, str) else "not-cached"
    return f"{resolved}@{revision}".encode()


def _one_thread(build: Callable[[Path], None]) -> Callable[[Path], None]:
    """``build`` run with one torch thread: a stage's weights then do not depend on how many cores the
    machine that built it had (float sums in another order send training down another path)."""

    def run(tmp: Path) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            build(tmp)
        finally:
            torch.set_num_threads(threads)

    return run


def stage_path(preset: ModelPreset, name: str, settings: object, inputs: list[bytes]) -> Path:
    """``<stage_root>/<name>-<key>``: the key hashes the settings, the preset's gold rater, the
    inputs' identities and the building code (:func:`_code_identity`)."""
    digest = hashlib.sha256(json.dumps([name, repr(settings), repr(preset.gold)], sort_keys=True).encode())
    digest.update(_code_identity())
    for item in inputs:
        digest.update(item)
    return preset.stage_root() / f"{name}-{digest.hexdigest()[:12]}"


def _stage(preset: ModelPreset, name: str, settings: object, inputs: list[bytes],
           build: Callable[[Path], None]) -> Path:
    """Build (once) and return :func:`stage_path`; its ``stage.json`` gains the preset and base model."""
    target = stage_path(preset, name, settings, inputs)

    def build_and_record(tmp: Path) -> None:
        build(tmp)
        record_path = tmp / "stage.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
        record.update(preset=preset.name, base_model=preset.model)
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    return cached_artifact(target, _one_thread(build_and_record))


def _record(stage_dir: Path) -> bytes:
    return (stage_dir / "stage.json").read_bytes()


def sft_model_dir(preset: ModelPreset | None = None) -> Path:
    """The supervised fine-tuned policy of ``preset`` (default: the tiny world), built on first call."""
    from rlhf import sft

    preset = preset or tiny()
    return _stage(preset, "sft", preset.sft, [_base_identity(preset.model)],
                  lambda tmp: sft.build_sft_stage(tmp, preset.model, preset.sft, preset.lora_targets))


def preference_dataset_path(preset: ModelPreset | None = None) -> Path:
    """JSON-lines file of annotator-labelled pairs of SFT responses (prompt/chosen/rejected + gold scores),
    labelled with the preset's gold rater (the one evaluation uses too)."""
    from rlhf import preferences

    preset = preset or tiny()
    sft_dir = sft_model_dir(preset)
    stage = _stage(preset, "preferences", preset.preferences, [_record(sft_dir)],
                   lambda tmp: preferences.build_preference_stage(tmp, sft_dir, preset.preferences,
                                                                  rater=preset.gold_rater()))
    return stage / "preferences.jsonl"


def reward_model_dir(preset: ModelPreset | None = None) -> Path:
    """The reward model (``AutoModelForSequenceClassification``, ``num_labels=1``) of ``preset``,
    trained on its preference data."""
    from rlhf import reward

    preset = preset or tiny()
    prefs = preference_dataset_path(preset)
    sft_dir = sft_model_dir(preset)
    return _stage(preset, "reward", preset.reward, [_record(prefs.parent)],
                  lambda tmp: reward.build_reward_stage(tmp, sft_dir, prefs, preset.reward, preset.lora_targets))


def main(argv: list[str] | None = None) -> int:
    """``python -m rlhf.stages build [--model MODEL]``: build (or find) the three stages, print their paths."""
    parser = argparse.ArgumentParser(prog="python -m rlhf.stages", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the SFT, preference and reward stages")
    build.add_argument("--model", default="tiny", help="'tiny' (default), a hub id such as microsoft/phi-2, or a directory")
    args = parser.parse_args(argv)
    preset = for_model(args.model)
    print(f"preset {preset.name} ({preset.model})")
    print(f"SFT model: {sft_model_dir(preset)}")
    print(f"preferences: {preference_dataset_path(preset)}")
    print(f"reward model: {reward_model_dir(preset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
