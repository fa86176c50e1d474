"""One executor layer for per-case work: local processes, or an existing Dask cluster.

Every stage that runs one function per case (radiomics extraction, image crops...)
goes through :func:`map_cases`, so all of them share the same behaviour:

* ``jobs=1`` runs in the calling process (easy to debug, no start-up cost);
* otherwise a pool of *spawned* local processes (safe next to threads, torch and
  Dask; each worker imports what it needs and reads its own files);
* with ``scheduler="tcp://host:8786"`` the work goes to an existing Dask
  distributed cluster (multi-centre cohorts that outgrow one machine); the
  files must then be readable from the Dask workers.

Only a bounded number of tasks is in flight at any time, so memory stays
bounded however large the cohort is, and a failing case never stops the others:
its exception is yielded in place of its result.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from dlrn.errors import ConfigError

Item = TypeVar("Item")
Key = Hashable

TASKS_IN_FLIGHT_PER_WORKER = 2
"""Queued tasks per worker: enough to keep workers busy, few enough to bound memory."""

MAX_TASKS_PER_WORKER_PROCESS = 200
"""Local worker processes are replaced after this many tasks, so slow leaks in
native libraries cannot grow a long run's memory (restart cost: about one second)."""


WARNINGS_LOG_VARIABLE = "DLRN_WARNINGS_LOG"
"""Set to a run log's path while a command keeps one: worker processes write their warnings
there (:func:`worker_warnings_to`)."""

SINGLE_THREAD_ENVIRONMENT = (
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


class WorkerDiedError(RuntimeError):
    """A worker process died while running this item (killed for memory, or crashed)."""


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def map_cases(
    function: Callable[[Item], Any],
    items: Iterable[tuple[Key, Item]],
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    desc: str | None = None,
    progress: bool = True,
) -> Iterator[tuple[Key, Any]]:
    """Apply ``function`` to every ``(key, item)`` pair; yield ``(key, result_or_exception)``.

    Results arrive in completion order. ``function`` must be importable (a
    module-level function) and ``item`` picklable: pass file paths, not pixels.
    ``jobs`` defaults to all cores (local) or twice the cluster's worker threads
    in flight (Dask).
    """
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    pairs = list(items)
    with tqdm(total=len(pairs), desc=desc, disable=not progress, unit="case",
              leave=False) as bar:
        if scheduler is not None:
            outcomes = _map_dask(function, pairs, jobs, scheduler)
        elif (jobs or default_jobs()) == 1 or len(pairs) <= 1:
            outcomes = _map_serial(function, pairs)
        else:
            outcomes = _map_processes(function, pairs, jobs or default_jobs())
        for outcome in outcomes:
            bar.update()
            yield outcome


def _map_serial(function: Callable, pairs: list[tuple[Key, Any]]) -> Iterator[tuple[Key, Any]]:
    for key, item in pairs:
        try:
            yield key, function(item)
        except Exception as error:  # reported per case, like the parallel paths
            yield key, error


def _map_processes(
    function: Callable, pairs: list[tuple[Key, Any]], jobs: int
) -> Iterator[tuple[Key, Any]]:
    """Spawned worker processes with at most ``jobs * TASKS_IN_FLIGHT_PER_WORKER`` tasks queued.

    When a worker dies (killed for memory, a native crash), every task of its pool fails
    with it, though only one caused it: the rest carry on in a fresh pool, and each task
    of the broken pool is run again at the end, alone in a worker of its own, so only the
    one that kills its worker again is reported as a :class:`WorkerDiedError`.
    """
    pending = iter(pairs)
    executor = _new_executor(jobs)
    in_flight: dict[Future, tuple[Key, Any]] = {}
    suspects: list[tuple[Key, Any]] = []
    try:
        while True:
            for key, item in _take(pending, jobs * TASKS_IN_FLIGHT_PER_WORKER - len(in_flight)):
                try:
                    future = executor.submit(function, item)
                except BrokenProcessPool:  # a worker died earlier: carry on with a new pool
                    executor.shutdown(wait=False, cancel_futures=True)
                    executor = _new_executor(jobs)
                    future = executor.submit(function, item)
                in_flight[future] = (key, item)
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                key, item = in_flight.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    suspects.append((key, item))
                else:
                    yield key, _outcome(future)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    for key, item in suspects:
        yield key, _run_alone(function, item)


def _run_alone(function: Callable, item: Any) -> Any:
    """``function(item)`` in a worker process of its own: its result, its exception, or a
    :class:`WorkerDiedError` when it kills that worker too."""
    executor = _new_executor(1)
    try:
        future = executor.submit(function, item)
        wait([future])
        return _outcome(future)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _new_executor(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_one_thread_per_worker,
        max_tasks_per_child=MAX_TASKS_PER_WORKER_PROCESS,
    )


def _one_thread_per_worker() -> None:
    """One process per core already uses the cores; native thread pools would oversubscribe.

    Python warnings go to the run's log when a command keeps one (:func:`worker_warnings_to`).
    """
    for variable in SINGLE_THREAD_ENVIRONMENT:
        os.environ[variable] = "1"  # read when ITK / OpenMP / BLAS load in this worker
    if os.environ.get(WARNINGS_LOG_VARIABLE):
        log_warnings_to(os.environ[WARNINGS_LOG_VARIABLE])


def log_warnings_to(path: str) -> None:
    """In a worker process: append its Python warnings to the run log at ``path``.

    A worker's stderr is the console's, so its warnings would otherwise be printed there
    with their source paths, between the progress bars.
    """
    def append(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: Any = None, line: str | None = None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{stamp} WARNING py.warnings: worker {os.getpid()}: {text}\n")

    warnings.showwarning = append


@contextmanager
def worker_warnings_to(path: str | Path) -> Iterator[None]:
    """While inside, worker processes started here (those of :func:`map_cases`, and joblib's,
    which run scikit-learn's grid searches) append their Python warnings to ``path``."""
    import joblib

    previous = os.environ.get(WARNINGS_LOG_VARIABLE)
    os.environ[WARNINGS_LOG_VARIABLE] = str(path)
    try:
        with joblib.parallel_config(backend="loky", initializer=log_warnings_to,
                                    initargs=(str(path),)):
            yield
    finally:
        if previous is None:
            os.environ.pop(WARNINGS_LOG_VARIABLE, None)
        else:
            os.environ[WARNINGS_LOG_VARIABLE] = previous


def _outcome(future: Future) -> Any:
    error = future.exception()
    if isinstance(error, BrokenProcessPool):
        return WorkerDiedError(
            "a worker process died while this case was running or queued "
            "(killed for lack of memory, or a crash in a native library)"
        )
    return error if error is not None else future.result()


def _map_dask(
    function: Callable, pairs: list[tuple[Key, Any]], jobs: int | None, scheduler: str
) -> Iterator[tuple[Key, Any]]:
    """Submit to an existing Dask cluster, keeping a bounded number of tasks in flight."""
    try:
        from distributed import Client, as_completed
    except ImportError as error:  # pragma: no cover - dask is a dependency
        raise ConfigError("a Dask scheduler was given but dask.distributed is missing") from error
    try:
        client = Client(scheduler, timeout="30s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler}: {error}") from error
    with client:
        limit = jobs or max(1, sum(client.nthreads().values())) * TASKS_IN_FLIGHT_PER_WORKER
        pending = iter(pairs)
        keys: dict[str, Key] = {}
        completed = as_completed(loop=client.loop)
        for key, item in _take(pending, limit):
            future = client.submit(function, item, pure=False)
            keys[future.key] = key
            completed.add(future)
        for future in completed:
            key = keys.pop(future.key)
            outcome = future.exception() if future.status == "error" else future.result()
            future.release()
            yield key, outcome
            for next_key, item in _take(pending, 1):
                following = client.submit(function, item, pure=False)
                keys[following.key] = next_key
                completed.add(following)


def _take(pending: Iterator[tuple[Key, Any]], count: int) -> list[tuple[Key, Any]]:
    taken = []
    for _ in range(count):
        pair = next(pending, None)
        if pair is None:
            break
        taken.append(pair)
    return taken
