"""The execution backends that sweeps, notebook sweeps and training share (issue 15):
joblib's ``Parallel`` on its loky processes (``"local"``), on Dask distributed (``"dask"``:
a scheduler address, or a ``LocalCluster`` made here) or in this process (``"serial"``).
No pool of our own: :func:`backend` enters joblib's ``parallel_config`` for the chosen one
and every fan-out in the package runs ``joblib.Parallel`` inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from .errors import ConfigError

BACKENDS = ("local", "dask", "serial")


def check_backend(backend: str, jobs: int, scheduler: str | None = None) -> None:
    """A :class:`ConfigError` naming the option when ``backend``/``jobs``/``scheduler`` are
    not usable together."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1, got {jobs!r}")
    if scheduler and backend != "dask":
        raise ConfigError(f"--scheduler {scheduler} needs --backend dask")


@contextmanager
def backend(name: str, jobs: int = 1, scheduler: str | None = None) -> Iterator[str]:
    """Enter joblib's backend for ``name``; yields the joblib backend's name.

    ``"dask"`` without ``scheduler`` starts a ``LocalCluster`` of ``jobs`` single-threaded
    worker processes on this machine (loopback only, no dashboard) and closes it on exit;
    with a scheduler address it connects a ``distributed.Client`` to it."""
    from joblib import parallel_config

    check_backend(name, jobs, scheduler)
    with ExitStack() as stack:
        if name == "serial":
            stack.enter_context(parallel_config(backend="sequential"))
            yield "sequential"
            return
        if name == "local":
            stack.enter_context(parallel_config(backend="loky", n_jobs=jobs))
            yield "loky"
            return
        from distributed import Client, LocalCluster  # the dask extra

        if scheduler:
            stack.enter_context(Client(scheduler))
        else:  # one thread per worker: a notebook kernel's environment is per process
            cluster = stack.enter_context(LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None))
            stack.enter_context(Client(cluster))
        stack.enter_context(parallel_config(backend="dask"))
        yield "dask"


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """The exceptions joblib raises when a worker process died under a task (loky's
    ``TerminatedWorkerError``, a broken process pool, Dask's ``KilledWorker`` once a task
    has killed more workers than the scheduler's ``allowed-failures``)."""
    from concurrent.futures.process import BrokenProcessPool

    errors: list[type[BaseException]] = [BrokenProcessPool]
    try:
        from joblib.externals.loky.process_executor import TerminatedWorkerError
        errors.append(TerminatedWorkerError)
    except ImportError:  # pragma: no cover - joblib without loky
        pass
    try:
        from distributed.scheduler import KilledWorker
        errors.append(KilledWorker)
    except ImportError:  # the dask extra is not installed
        pass
    return tuple(errors)
