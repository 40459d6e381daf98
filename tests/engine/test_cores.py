"""Sharing work between the cores: helper threads, splits by size and row count."""

import threading

import numpy as np
import pytest

from gpt_tui.engine import cores
from gpt_tui.engine.cores import ONE_CORE, Settings, Split


def test_jobs_run_on_several_threads_and_all_finish() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            seen.append(threading.current_thread().name)

    cores.workers(3).run([job, job, job])
    assert len(seen) == 3 and len(set(seen)) == 3  # the caller and two helpers


def test_a_helpers_error_reaches_the_caller_and_the_helpers_still_serve() -> None:
    def bad() -> None:
        np.zeros((2, 3)) @ np.zeros((4, 5))

    with pytest.raises(ValueError, match="mismatch"):
        cores.workers(2).run([lambda: None, bad])
    out: list[int] = []
    cores.workers(2).run([lambda: out.append(1), lambda: out.append(2)])
    assert sorted(out) == [1, 2]


def test_a_split_shares_only_matrices_of_its_size() -> None:
    split = Split(parts=2, min_bytes=1000)
    assert split.parts_for(999) == 1 and split.parts_for(1000) == 2
    assert ONE_CORE.parts_for(10**9) == 1


def test_row_counts_take_the_next_planned_one_and_prefill_beyond() -> None:
    two, four = Split(parts=2), Split(blas_threads=2)
    settings = Settings(decode={1: ONE_CORE, 2: two, 8: four}, prefill=Split(parts=3))
    assert settings.for_rows(1) is ONE_CORE
    assert settings.for_rows(2) is two
    assert settings.for_rows(3) is four  # no plan for 3 or 4 rows: that of 8
    assert settings.for_rows(9) == Split(parts=3)


def test_ranges_cover_everything_once() -> None:
    assert cores.ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert cores.ranges(2, 4) == [(0, 1), (1, 2)]  # never an empty part
