"""README command 1 (the quick-start job) runs and learns: `python -m cuflow.demo`, with fewer epochs."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")


def test_quick_start_job_trains_and_prints_test_accuracy():
    env = dict(os.environ, CUFLOW_DEMO_EPOCHS="4")
    proc = subprocess.run([sys.executable, "-m", "cuflow.demo"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy: "), proc.stdout[-2000:]
    assert float(last.split()[2]) > 0.8, last
    assert "Epoch 4/4" in proc.stderr  # the tqdm progress bar
