"""gpt-tui: a terminal playground for GPT-style language models."""

import os
import sys

__version__ = "0.1.0"

# OpenBLAS's idle threads spin after every call (about 0.1 s by default) before they sleep, and
# while they spin they hold the cores our own helper threads and any other program need: on the
# 2-core Intel Xeon host a product shared with a helper took 82 ms right after a 2-thread BLAS
# call against 52 ms otherwise, and with another process busy, 2-thread BLAS candidates took
# 5-15x longer than one core. Told to sleep at once (2^4 cycles, OpenBLAS's minimum), they cost
# nothing measurable there (a 1-row step on 2 threads: 21.1 ms against 21.0). OpenBLAS reads
# this when NumPy loads it, so it only holds when NumPy was not imported first; the planner
# keys its plans on whether it did (`engine.cores.blas_threads_sleep`).
BLAS_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"
BLAS_THREADS_SLEEP = BLAS_TIMEOUT_ENV in os.environ or "numpy" not in sys.modules
os.environ.setdefault(BLAS_TIMEOUT_ENV, "4")
