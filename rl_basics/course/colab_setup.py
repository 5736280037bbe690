"""Google Colab set-up: what the first cell of every notebook runs on Colab, after cloning the course.

The cell is ::

    if "google.colab" in sys.modules:
        subprocess.run("[ -d /content/rl-course ] || git clone -q --depth 1 <repo> /content/rl-course", shell=True)
        runpy.run_path("/content/rl-course/rl_basics/course/colab_setup.py", run_name="__main__")

so this file runs inside the notebook's own Python process, where it

1. installs the course in editable mode with pip, with torch pinned to the version already
   installed (Colab's CUDA build of torch is never replaced: pip keeps it or fails loudly);
2. makes the course importable in the running session, without a restart;
3. says so when pip upgraded a package the session had already loaded (numpy, matplotlib):
   then, and only then, Runtime > Restart session is needed.

Only the standard library is used: nothing of the course is installed yet when this runs.
"""

import os
import subprocess
import sys
from importlib.metadata import version

def colab_setup(home: str) -> None:
    """Install the course at ``home`` (a clone) into this Python, keeping the installed torch."""
    pin = os.path.join(os.path.dirname(home), "keep-colab-torch.txt")
    with open(pin, "w") as f:  # a constraint, not a requirement: pip may keep torch, never replace it
        f.write(f"torch=={version('torch')}\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", pin, "-e", home], check=True)
    if home not in sys.path:
        sys.path.insert(0, home)  # importable now (pip's editable path is only read by a new session)
    stale = [m for m in ("numpy", "matplotlib") if m in sys.modules and version(m) != sys.modules[m].__version__]
    if stale:
        print(f"pip upgraded {', '.join(stale)}, which this session had already loaded: "
              "Runtime > Restart session, then run on.")


if __name__ == "__main__":  # run by the Colab cell (runpy) or as a script: the clone is three folders up
    colab_setup(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
