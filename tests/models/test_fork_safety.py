"""Models load in the master and predict in forked workers: that must not deadlock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_openmp_model_predicts_in_a_worker_forked_after_loading(tmp_path: Path) -> None:
    # A fresh interpreter, so no OpenMP pool from other tests exists before the fork.
    script = textwrap.dedent(
        f"""
        import os, sys, time
        import numpy as np
        from threadpoolctl import threadpool_limits
        from sklearn.datasets import load_diabetes
        from sklearn.ensemble import HistGradientBoostingRegressor
        from flaskserve.models.loaders import default_loaders
        from flaskserve.models.loading import load_registry
        from flaskserve.settings import load_settings
        from flaskserve.testing import save_model

        features, target = load_diabetes(return_X_y=True)
        with threadpool_limits(limits=1):  # training must not start the pool either
            model = HistGradientBoostingRegressor(max_iter=20).fit(features, target)
        path = save_model(model, __import__("pathlib").Path({str(tmp_path)!r}) / "hgb.joblib")
        settings = load_settings(None, model_path=path, allow_pickle=True)
        served = load_registry(settings, default_loaders()).resolve("hgb")
        rows = np.tile(features, (20, 1))
        pid = os.fork()
        if pid == 0:
            served.call("predict", rows)
            os._exit(0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.05)
        os.kill(pid, 9)
        sys.exit(3)
        """
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
