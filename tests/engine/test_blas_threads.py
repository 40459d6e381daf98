"""gpt-tui tells OpenBLAS to put its idle threads to sleep at once, and knows when it could."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import {first}
import gpt_tui
from gpt_tui.engine.cores import blas_threads_sleep
from gpt_tui.engine.plan.keys import blas_build
import os
print(os.environ["OPENBLAS_THREAD_TIMEOUT"], blas_threads_sleep(), "spin" in blas_build())
"""


def _run(first: str, env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(first=first)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.split()


def test_the_timeout_is_set_before_numpy_loads_openblas_and_the_plan_key_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    assert _run("gpt_tui", env) == ["4", "True", "False"]
    # NumPy first: OpenBLAS already read its settings; plans are keyed apart
    assert _run("numpy", env) == ["4", "False", "True"]
    # the user's own setting is kept, and counted as in effect
    assert _run("numpy", {**env, "OPENBLAS_THREAD_TIMEOUT": "20"}) == ["20", "True", "False"]
