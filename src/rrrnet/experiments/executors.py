"""Where the benchmark's cells run: here, one after another, or as Ray tasks.

An executor maps a picklable top-level function over items and yields ``(item, outcome)`` as
each finishes, the outcome being the function's result or the exception it raised; the caller
records each result as it arrives, so an interruption loses only the items in flight.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError
from ..options import EXECUTORS



class LocalExecutor:
    """One item after another in this process (the default)."""

    name = "local"

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[Any, Any]]:
        for item in items:
            try:
                outcome = fn(item)
            except Exception as err:  # recorded by the caller; Ctrl-C still stops the grid
                outcome = err
            yield item, outcome


class RayExecutor:
    """One Ray task per item, each asking for ``cpus`` CPUs and ``gpus`` GPUs.

    ``address``: an existing cluster (``auto``, ``HOST:6379``, or ``ray://HOST:10001`` for Ray
    Client); without it, a Ray instance already started in this process is used, else a local
    one is started (and shut down at the end). Every node must be able to import ``rrrnet`` and
    read the same paths (datasets, output folder, weights).
    """

    name = "ray"

    def __init__(self, address: str | None = None, cpus: float = 1, gpus: float = 0,
                 init_kwargs: dict[str, Any] | None = None):
        if cpus <= 0 or gpus < 0:
            raise ConfigError(f"--cpus-per-cell must be > 0 and --gpus-per-cell >= 0, got "
                              f"{cpus} and {gpus}")
        self.address, self.cpus, self.gpus = address, cpus, gpus
        self.init_kwargs = init_kwargs or {}

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[Any, Any]]:
        if not items:
            return
        ray = import_ray()
        started = self._connect(ray)
        pending: dict[Any, Any] = {}
        try:
            task = ray.remote(fn).options(num_cpus=self.cpus, num_gpus=self.gpus)
            pending = {task.remote(item): item for item in items}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:  # the task's own exception
                        cause = getattr(err, "cause", None)
                        outcome = cause if isinstance(cause, BaseException) else err
                    except ray.exceptions.RayError as err:  # worker or node lost, task cancelled
                        outcome = err
                    yield item, outcome
        finally:
            for ref in pending:  # interrupted: stop the cells in flight (they resume later)
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Connect or start Ray; True when this executor started it (and so shuts it down)."""
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, **self.init_kwargs)
        except ConnectionError as err:
            raise ConfigError(f"cannot connect to the Ray cluster at --ray-address "
                              f"{self.address} ({err}); is `ray start --head` running there?"
                              ) from None
        return True


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'rrrnet[cluster]'") from None
    return ray


def make_executor(name: str = "local", address: str | None = None, cpus: float = 1,
                  gpus: float = 0) -> LocalExecutor | RayExecutor:
    if name == "local":
        if address:
            raise ConfigError("--ray-address needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, cpus, gpus)
    raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
