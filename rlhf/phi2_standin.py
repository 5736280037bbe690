"""An offline stand-in for ``microsoft/phi-2``, so phi-2's own code path runs on a CPU without a download.

phi-2 itself cannot be fetched here (or in CI), yet the course's destination is
``load_model("microsoft/phi-2")``. This module builds a small ``PhiForCausalLM`` that carries
phi-2's conventions and installs it as the local Hugging Face cache entry of ``microsoft/phi-2``,
so that with ``HF_HUB_OFFLINE=1`` the very calls a learner's GPU makes resolve to it:
``load_model("microsoft/phi-2")``, ``RL_COURSE_MODEL=microsoft/phi-2`` in notebooks 09–12, and
``rlhf-pipeline --model microsoft/phi-2`` (the ``phi-2`` preset, LoRA in every stage).

What it shares with phi-2 (and the tiny world's own model does not all have):

- the config of phi-2's ``config.json``: ``PhiForCausalLM``, partial rotary embeddings (0.4),
  ``gelu_new``, an untied ``lm_head`` with a bias, phi-2's dropouts (``resid_pdrop=0.1``,
  ``embd_pdrop=0``, ``attention_dropout=0``) and its stored dtype, ``float16`` (which the loader must
  not take as the default);
- a byte-level BPE tokenizer with ``<|endoftext|>`` as BOS, EOS and UNK and **no pad token** (the
  loader must add one), whose vocabulary is smaller than the embedding's rows (the added pad
  token lands in an untrained spare row, as on phi-2).

Its weights are the tiny world's pretrained ones (so it writes the tiny world's reviews), and its
size is the tiny model's: every shape is small, every code path is phi-2's. Nothing large is
committed: it is built from ``data/tiny-world/`` in a second.

Commands::

    python -m rlhf.phi2_standin install     # into the default Hugging Face cache (HF_HUB_CACHE / HF_HOME)
    python -m rlhf.phi2_standin uninstall   # remove it again (before downloading the real phi-2!)
    python -m rlhf.phi2_standin where       # the snapshot directory it would use

While it is installed, an *online* ``from_pretrained("microsoft/phi-2")`` may still check the hub
and replace it; offline it is phi-2 as far as transformers can tell. It refuses to overwrite a
cache entry that is not its own (a real phi-2 download), and it marks its own with
``STANDIN.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from rlhf.models import PHI2
from rlhf.tiny_world import EOS_TOKEN, PAD_TOKEN, base_model_dir

MARKER = "STANDIN.json"
RESERVED_TOKEN = "<|reserved|>"
"""The tiny tokenizer's pad token, renamed: phi-2's tokenizer has no pad token, and the id keeps its row."""
PHI2_CONVENTIONS = {"resid_pdrop": 0.1, "embd_pdrop": 0.0, "attention_dropout": 0.0, "dtype": "float16",
                    "pad_token_id": None, "tie_word_embeddings": False, "hidden_act": "gelu_new"}
"""Settings of phi-2's own ``config.json`` that the stand-in copies (with ``partial_rotary_factor`` 0.4)."""


def build(out_dir: Path) -> None:
    """Write the stand-in (config, safetensors weights, tokenizer, marker) into ``out_dir``."""
    source = base_model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text())
    config.update(PHI2_CONVENTIONS, _name_or_path=PHI2)
    if config["rope_parameters"]["partial_rotary_factor"] != 0.4:
        raise ValueError("the tiny world's model should carry phi-2's partial rotary factor 0.4")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = json.loads((source / "generation_config.json").read_text())
    generation.pop("pad_token_id", None)
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    shutil.copyfile(source / "model.safetensors", out_dir / "model.safetensors")

    tokenizer = json.loads((source / "tokenizer.json").read_text())
    for token in tokenizer["added_tokens"]:
        if token["content"] == PAD_TOKEN:
            token.update(content=RESERVED_TOKEN, special=False)
    vocab = tokenizer["model"]["vocab"]
    vocab[RESERVED_TOKEN] = vocab.pop(PAD_TOKEN)
    if tokenizer.get("padding") is not None:
        tokenizer["padding"] = None
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    tokenizer_config.pop("pad_token", None)
    tokenizer_config.update(bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN, model_max_length=2048)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    (out_dir / MARKER).write_text(json.dumps({
        "what": f"an offline stand-in for {PHI2} built by rlhf.phi2_standin from the tiny world; not phi-2's weights",
        "source": str(source),
    }, indent=2) + "\n")


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _revision() -> str:
    """A 40-hex 'commit' named after the stand-in's inputs, so a changed tiny world is a new snapshot."""
    digest = hashlib.sha1()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        digest.update((base_model_dir() / name).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def repo_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<hub cache>/models--microsoft--phi-2``."""
    return _cache_root(cache_dir) / ("models--" + PHI2.replace("/", "--"))


def is_installed(cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether the cache's ``microsoft/phi-2`` entry is this stand-in, up to date."""
    return (repo_dir(cache_dir) / "snapshots" / _revision() / MARKER).is_file()


def install(cache_dir: str | os.PathLike | None = None) -> Path:
    """Install the stand-in as the hub cache's ``microsoft/phi-2`` (``refs/main`` -> its snapshot).

    Returns:
        the snapshot directory.

    Raises:
        FileExistsError: if the cache holds a ``microsoft/phi-2`` that is not a stand-in (a real
            download is never overwritten).
    """
    repo = repo_dir(cache_dir)
    snapshots = repo / "snapshots"
    if snapshots.is_dir() and any(not (s / MARKER).is_file() for s in snapshots.iterdir() if s.is_dir()):
        raise FileExistsError(f"{repo} holds a real {PHI2} download; the stand-in never replaces it "
                              "(use another cache: HF_HUB_CACHE=/some/dir python -m rlhf.phi2_standin install)")
    revision = _revision()
    target = snapshots / revision
    if not (target / MARKER).is_file():
        tmp = snapshots / f".{revision}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    for old in snapshots.iterdir():  # earlier stand-ins
        if old.is_dir() and old.name != revision and (old / MARKER).is_file():
            shutil.rmtree(old)
    return target


def uninstall(cache_dir: str | os.PathLike | None = None) -> bool:
    """Remove the stand-in's cache entry (only a stand-in's); returns whether anything was removed."""
    repo = repo_dir(cache_dir)
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return False
    if any(not (s / MARKER).is_file() for s in snapshots.iterdir() if s.is_dir()):
        raise FileExistsError(f"{repo} holds a real {PHI2} download; remove it yourself if you mean to")
    shutil.rmtree(repo)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlhf.phi2_standin", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["install", "uninstall", "where"])
    parser.add_argument("--cache-dir", default=None, help="the hub cache (default: HF_HUB_CACHE, or HF_HOME/hub)")
    args = parser.parse_args(argv)
    if args.command == "install":
        print(f"{PHI2} stand-in installed at {install(args.cache_dir)}")
    elif args.command == "uninstall":
        print("removed" if uninstall(args.cache_dir) else "nothing to remove")
    else:
        print(repo_dir(args.cache_dir) / "snapshots" / _revision())
    return 0


if __name__ == "__main__":
    sys.exit(main())
