"""The course opened as a newcomer would: `jupyter lab` in a real (headless) browser.

Starts ``jupyter lab`` headless on loopback (a random port and token, a temporary root
holding a copy of the first course notebook), opens the notebook in Debian's Chromium driven
by Playwright, runs its first cells (Run > Run All Above Selected Cell), waits for their output and saves a
screenshot to ``tests/artifacts/browser_<notebook>.png``. This proves the README's "open the
course" command gives a working notebook with a kernel that imports the course.

Skipped, with the reason, when Chromium (``/usr/bin/chromium``, Debian's ``chromium``
package, installed by ``.ci/run``) or the ``playwright`` package is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("RL_COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]
CODE_CELLS_TO_RUN = 3
"""How many code cells (from the top) the test runs: imports and the first outputs, a few seconds."""

FALLBACK_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Smoke notebook\n\n**Learning goals**: open the course."},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import numpy as np\nimport rl_basics"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "print('discounted return', sum(0.9**k for k in range(3)))"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def _course_notebook() -> tuple[str, dict]:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
    if notebooks:
        return notebooks[0].name, json.loads(notebooks[0].read_text(encoding="utf-8"))
    return "smoke.ipynb", FALLBACK_NOTEBOOK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def jupyter_lab(tmp_path):
    """A running ``jupyter lab`` serving a copy of the first course notebook; yields (url, name, cells)."""
    name, notebook = _course_notebook()
    root = tmp_path / "course"
    root.mkdir()
    (root / name).write_text(json.dumps(notebook), encoding="utf-8")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no news pop-up over the notebook
    log = tmp_path / "jupyter.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:  # CI containers run as root; jupyter refuses that without the flag
        command.append("--allow-root")
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                   start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", process, log)
        yield f"{base}/lab/tree/{name}?token={token}", name, notebook["cells"]
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _cells_to_run(cells: list[dict]) -> int:
    """The number of cells from the top that holds the first CODE_CELLS_TO_RUN code cells."""
    seen = 0
    for i, cell in enumerate(cells):
        seen += cell["cell_type"] == "code"
        if seen == CODE_CELLS_TO_RUN:
            return i + 1
    return len(cells)


def test_course_notebook_runs_in_jupyter_lab_in_chromium(jupyter_lab):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` (as .ci/run does) to run this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    url, name, cells = jupyter_lab
    n_cells = _cells_to_run(cells)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"browser_{Path(name).stem}.png"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)  # generous: CI runs this beside other tests on 2 cores
            page.goto(url)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")  # the kernel is up
            # what a newcomer does: select the cell after the first few, then Run > Run All Above Selected Cell
            all_cells = page.locator(".jp-NotebookPanel .jp-Cell")
            if n_cells < len(cells):
                all_cells.nth(n_cells).locator(".jp-InputPrompt").first.click()
                command = "Run All Above Selected Cell"
            else:
                command = "Run All Cells"
            code_cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
            _run_from_menu(page, command, code_cells.nth(0).locator(".jp-InputArea-prompt"), sync_api.TimeoutError)
            n_code = sum(c["cell_type"] == "code" for c in cells[:n_cells])
            # each run code cell gets its execution count ([1], [2], ...) once it has finished
            for i in range(n_code):
                prompt = code_cells.nth(i).locator(".jp-InputArea-prompt")
                page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle())
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            prompts = [code_cells.nth(i).locator(".jp-InputArea-prompt").inner_text() for i in range(n_code)]
            outputs = [code_cells.nth(i).locator(".jp-OutputArea-output").all_inner_texts() for i in range(n_code)]
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
            code_cells.nth(min(1, n_code - 1)).scroll_into_view_if_needed()
        finally:
            if "page" in locals():  # also on failure: the picture shows what went wrong
                page.screenshot(path=str(screenshot), full_page=False)
                print(f"screenshot: {screenshot}")
            browser.close()

    texts = [t for cell_outputs in outputs for t in cell_outputs if t.strip()]
    tracebacks = [t for t in errors if "Traceback" in t or "Error:" in t]  # warnings on stderr are fine
    assert prompts == [f"[{i + 1}]:" for i in range(n_code)], f"cells ran out of order or twice: {prompts}"
    assert not tracebacks, f"{name}: the first cells raised:\n" + "\n".join(tracebacks)
    assert texts, f"{name}: the first {n_code} code cells ran but printed nothing; see {screenshot}"
    assert screenshot.stat().st_size > 10_000, f"the screenshot {screenshot} looks empty"


def _run_from_menu(page, command: str, first_prompt, timeout_error: type[Exception], attempts: int = 3) -> None:
    """Click Run > ``command`` until the first code cell is queued or running (its prompt shows ``[*]``
    or a count). On a loaded machine JupyterLab can drop a menu click made while it is still settling;
    the queued mark is drawn by the page itself at once, so a retry never runs a cell twice."""
    for _ in range(attempts):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text=command).first.click()
        try:
            page.wait_for_function("el => /\\[(\\d+|\\*)\\]/.test(el.textContent)", arg=first_prompt.element_handle(),
                                   timeout=20_000)
            return
        except timeout_error:
            page.keyboard.press("Escape")  # close the menu if it is still open
    raise AssertionError(f"Run > {command} did not start the notebook's first cell after {attempts} tries")


def test_jupyter_lab_is_installed():
    """The README's "open the course" command needs jupyter lab in the course's environment."""
    done = subprocess.run([sys.executable, "-m", "jupyter", "lab", "--version"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
