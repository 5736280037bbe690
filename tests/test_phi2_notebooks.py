"""Notebooks 09–12 on phi-2's own code path, offline, with a memory budget checked after every cell.

Each notebook runs top to bottom in a Jupyter kernel (``nbclient``) with ``RL_COURSE_MODEL=microsoft/phi-2``
and ``HF_HUB_OFFLINE=1``: the hub cache's ``microsoft/phi-2`` is the stand-in of :mod:`rlhf.phi2_standin`
(installed by ``conftest.py``'s ``phi2_standin`` fixture), so every cell takes the ``phi-2`` preset — LoRA
stages, the preset's PPO settings, the phi-2 branches of the asserts — with a model small enough for a CPU.
A failing cell fails the test with that cell's error.

A probe in the same kernel counts the phi-2-shaped models alive: the distinct base weights
(``embed_tokens``) of ``PhiModel`` trunks, by what owns them — a causal LM (a policy; LoRA wrappers and PPO's
adapters share their base's weights) or a sequence classifier (a reward model). It counts after every
cell and whenever a ``PhiForCausalLM`` or ``PhiForSequenceClassification`` is built, so a model loaded
while others are alive is seen even when the same cell frees them again. A 16 GB GPU holds one phi-2
policy base and one phi-2 reward model (notebook 11, section 2); a notebook that ever holds more fails,
naming the cell. Only models loaded from a checkpoint count (``config.name_or_path`` set: the stages, phi-2,
its stand-in); the tiny random models an exercise check builds from a config hold no phi-2 weights.
The probe counts garbage that is still in memory too: a notebook must
``del`` a model *and* collect it (``gc.collect()``, as the notebooks' ``release_memory()`` does).
Training runs checkpoint into a fresh ``RL_COURSE_RUNS`` folder per notebook, so nothing is resumed from
an earlier test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ipykernel.kernelspec
import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from rlhf.models import PHI2

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {  # the most phi-2 policy bases and reward models each notebook is expected to hold at once
    "09_language_models_as_policies": (1, 0),  # the base model, and the SFT policy as a LoRA adapter on it
    "10_reward_modeling": (1, 1),  # the SFT policy samples the pairs and is freed; the reward model trains
    "11_ppo_rlhf": (1, 1),
    "12_beyond_ppo": (1, 1),
}
MAX_POLICY_BASES, MAX_REWARD_MODELS = 1, 1
CELL_TIMEOUT = 900

PROBE = r'''
import functools as _functools


def _rl_course_phi2_count(exclude=None):
    # [policy bases, reward models, other trunks]: distinct PhiModel weights alive, by their owner's kind
    import gc
    import sys
    import weakref

    phi = sys.modules["transformers.models.phi.modeling_phi"]
    owners = {}
    trunks = []
    for obj in gc.get_objects():
        if isinstance(obj, weakref.ProxyTypes) or obj is exclude:  # (a dead proxy raises on any other check)
            continue
        if isinstance(obj, phi.PhiForCausalLM):
            owners[id(obj.model)] = 0
        elif isinstance(obj, phi.PhiForSequenceClassification):
            owners[id(obj.model)] = 1
        elif isinstance(obj, phi.PhiModel):
            trunks.append(obj)
    found = [set(), set(), set()]
    for trunk in trunks:
        if exclude is not None and trunk is getattr(exclude, "model", None):
            continue
        if not trunk.config.name_or_path:  # built from a config in memory (an exercise check's tiny random model)
            continue
        weight = trunk.embed_tokens.weight
        if weight.device.type != "meta":  # a model being built has no storage yet
            found[owners.get(id(trunk), 2)].add((weight.device.type, weight.data_ptr()))
    return [len(kind) for kind in found]


_rl_course_phi2_peak = [0, 0, 0]


def _rl_course_phi2_watch(cls, kind):
    # Count at every construction too: a model loaded while others are alive, inside one cell, is seen.
    original = cls.__init__

    @_functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        counts = _rl_course_phi2_count(exclude=self)
        counts[kind] += bool(self.config.name_or_path)  # loaded weights, not a random model built from a config
        _rl_course_phi2_peak[:] = [max(a, b) for a, b in zip(_rl_course_phi2_peak, counts)]

    cls.__init__ = __init__


def _rl_course_phi2_probe():
    # The most models alive during the last cell: when one was built, and at its end.
    import json

    counts = _rl_course_phi2_count()
    print(json.dumps([max(a, b) for a, b in zip(_rl_course_phi2_peak, counts)]))
    _rl_course_phi2_peak[:] = [0, 0, 0]


from transformers.models.phi import modeling_phi as _modeling_phi

_rl_course_phi2_watch(_modeling_phi.PhiForCausalLM, 0)
_rl_course_phi2_watch(_modeling_phi.PhiForSequenceClassification, 1)
'''


class _CurrentEnvKernelSpecs(KernelSpecManager):
    """The python kernel of the environment running the tests (as nbval's ``--nbval-current-env``)."""

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                      **ipykernel.kernelspec.get_kernel_dict())


def _execute_aside(client: NotebookClient, nb, source: str):
    """Run ``source`` in the notebook's kernel as a cell of its own (appended, run, removed again: nbclient
    writes an executed cell back into the notebook at the index it is given)."""
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    return cell


def run_notebook(nb, probe: bool = True) -> tuple[list[dict], float]:
    """Execute ``nb`` cell by cell in a fresh kernel; returns one record per code cell (its index, seconds and,
    with ``probe``, the most models alive at once during it) and the kernel's CPU seconds. Raises
    ``pytest.fail`` with the failing cell's error."""
    km = KernelManager(kernel_name="current-env", kernel_spec_manager=_CurrentEnvKernelSpecs())
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, allow_errors=False, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    records = []
    with client.setup_kernel(cleanup_kc=True):  # (a client given its kernel manager would leave the kernel running)
        if probe:
            _execute_aside(client, nb, PROBE)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as err:
                pytest.fail(f"cell {index} failed:\n{err}", pytrace=False)
            record = {"cell": index, "seconds": time.perf_counter() - start}
            if probe:
                check = _execute_aside(client, nb, "_rl_course_phi2_probe()")
                text = "".join(o.text for o in check.outputs if o.output_type == "stream" and o.name == "stdout")
                counts = json.loads(text.strip().splitlines()[-1])
                record.update(zip(("policy_bases", "reward_models", "other_trunks"), counts))
            records.append(record)
        usage = _execute_aside(client, nb, "import resource\n_usage = resource.getrusage(resource.RUSAGE_SELF)\n"
                                           "print(_usage.ru_utime + _usage.ru_stime)")
        cpu_seconds = float("".join(o.text for o in usage.outputs if o.output_type == "stream" and o.name == "stdout"))
    return records, cpu_seconds


@pytest.fixture(scope="session")
def standin_stages(phi2_standin):
    """The stand-in's SFT, preference and reward stages (rlhf.stages, cached under data/cache/microsoft--phi-2),
    built once, in a process of their own (the hub cache is read from the environment at import time)."""
    done = subprocess.run([sys.executable, "-m", "rlhf.stages", "build", "--model", PHI2], capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def phi2_env(monkeypatch, tmp_path):
    """What a learner sets to take phi-2's path offline; kernels inherit it. Runs go to a fresh folder, and the
    kernel computes on one thread (the stand-in's small matrices gain nothing from more, and lose much on a
    busy machine)."""
    monkeypatch.setenv("RL_COURSE_MODEL", PHI2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RL_COURSE_RUNS", str(tmp_path / "runs"))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")
    return tmp_path


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_runs_on_phi2s_code_path_within_one_gpus_memory(name, standin_stages, phi2_env, record_property):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('assert preset.name == "phi-2", preset  # the path under test'))
    start = time.perf_counter()
    records, cpu_seconds = run_notebook(nb)
    seconds = time.perf_counter() - start
    peak = {key: max(r[key] for r in records) for key in ("policy_bases", "reward_models", "other_trunks")}
    record_property("seconds", round(seconds, 1))
    record_property("kernel_cpu_seconds", round(cpu_seconds, 1))
    record_property("peak", peak)
    print(f"{name}: {seconds:.0f} s on the stand-in ({cpu_seconds:.0f} CPU-seconds in the kernel); "
          f"most phi-2 models alive at once: {peak}")
    over = [r for r in records if r["policy_bases"] > MAX_POLICY_BASES or r["reward_models"] > MAX_REWARD_MODELS
            or r["other_trunks"]]
    assert not over, (f"{name} holds more phi-2 models than one GPU does (at most {MAX_POLICY_BASES} policy base and "
                      f"{MAX_REWARD_MODELS} reward model) during cells {[r['cell'] for r in over]}: {over}")
    assert (peak["policy_bases"], peak["reward_models"]) == NOTEBOOKS[name], peak


def test_the_probe_sees_two_policies_and_forgets_a_freed_one():
    """The memory probe itself: two causal LMs in one kernel count 2, a LoRA wrapper shares its base's weights,
    a reward model counts apart, a model that is deleted and collected no longer counts, a model built
    and freed within one cell while another is alive is still seen, and random models built from a config
    (no checkpoint behind them, as an exercise check builds) do not count."""
    cells = [
        "import gc\nfrom peft import LoraConfig, get_peft_model\n"
        "from transformers import PhiConfig, PhiForCausalLM, PhiForSequenceClassification\n"
        "shape = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, "
        "num_attention_heads=2, pad_token_id=0)\n"
        "config = PhiConfig(**shape, name_or_path='a/checkpoint')  # as from_pretrained leaves it",
        "a = PhiForCausalLM(config)",
        "wrapped = get_peft_model(a, LoraConfig(r=2, target_modules=['q_proj']))",  # a's weights, not a copy
        "b = PhiForCausalLM(config)",
        "del b\ngc.collect()",
        "reward = PhiForSequenceClassification(config)",
        "c = PhiForCausalLM(config)\ndel c\ngc.collect()",
        "random_policy, random_reward = PhiForCausalLM(PhiConfig(**shape)), PhiForSequenceClassification(PhiConfig(**shape))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    counts = [(r["policy_bases"], r["reward_models"]) for r in run_notebook(nb)[0]]
    assert counts == [(0, 0), (1, 0), (1, 0), (2, 0), (1, 0), (1, 1), (2, 1), (1, 1)], counts
