"""dlrn.parallel.map_cases: same results and per-item errors on every backend."""

from __future__ import annotations

import os

import pytest

from dlrn.errors import ConfigError
from dlrn.parallel import WorkerDiedError, map_cases


def square_or_fail(value: int) -> int:
    """Module level so that spawned workers and Dask can import it."""
    if value == 3:
        raise ValueError(f"cannot square {value}")
    return value * value


def die_on_two(value: int) -> int:
    if value == 2:
        os._exit(1)  # a worker killed mid-task (out of memory, native crash)
    return value


def _check_outcomes(outcomes: dict) -> None:
    assert sorted(outcomes) == list(range(8))
    for key, outcome in outcomes.items():
        if key == 3:
            assert isinstance(outcome, ValueError)
            assert "cannot square 3" in str(outcome)
        else:
            assert outcome == key * key


def test_serial_yields_results_and_errors_per_item():
    outcomes = dict(map_cases(square_or_fail, [(i, i) for i in range(8)], jobs=1, progress=False))
    _check_outcomes(outcomes)


def test_local_processes_keep_going_after_a_failure():
    outcomes = dict(map_cases(square_or_fail, [(i, i) for i in range(8)], jobs=2, progress=False))
    _check_outcomes(outcomes)


def test_keys_can_differ_from_items():
    pairs = [(f"case-{i}", i) for i in range(4)]
    outcomes = dict(map_cases(square_or_fail, pairs, jobs=1, progress=False))
    assert outcomes == {"case-0": 0, "case-1": 1, "case-2": 4, "case-3": outcomes["case-3"]}
    assert isinstance(outcomes["case-3"], ValueError)


def test_only_the_item_that_kills_its_worker_is_reported_dead():
    """Every task of the dead worker's pool fails with it; they run again, each alone, so
    only the culprit is reported, whatever the timing of the pool's breakdown."""
    pairs = [(i, i) for i in range(12)]
    outcomes = dict(map_cases(die_on_two, pairs, jobs=2, progress=False))
    assert sorted(outcomes) == list(range(12))
    assert isinstance(outcomes[2], WorkerDiedError)
    assert all(outcomes[i] == i for i in range(12) if i != 2)


def test_dask_cluster_gives_the_same_outcomes():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        pairs = [(i, i) for i in range(8)]
        outcomes = dict(
            map_cases(square_or_fail, pairs, scheduler=cluster.scheduler_address, progress=False)
        )
    _check_outcomes(outcomes)


def test_jobs_must_be_positive():
    with pytest.raises(ConfigError, match="jobs must be at least 1"):
        list(map_cases(square_or_fail, [(1, 1)], jobs=0))


def itk_threads(_: int) -> str:
    import SimpleITK as sitk

    itk = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    return f"{os.environ.get('OMP_NUM_THREADS')}/{itk}"


def test_local_workers_run_native_libraries_single_threaded():
    outcomes = dict(map_cases(itk_threads, [(0, 0), (1, 1)], jobs=2, progress=False))
    assert outcomes == {0: "1/1", 1: "1/1"}
