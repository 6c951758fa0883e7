"""A tiny benchmark grid on a real local Ray instance: one task per cell, results gathered."""
import pytest
from conftest import make_meta_album

from rrrnet.errors import ConfigError
from rrrnet.experiments import benchmark as bench
from rrrnet.experiments.executors import LocalExecutor, RayExecutor, make_executor
from test_benchmark import tiny_options

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rrrnet[cluster]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_grid_runs_as_ray_tasks_and_gathers_rows(tmp_path, local_ray):
    data = make_meta_album(tmp_path / "shapes", classes=3, per_class=6)
    out = tmp_path / "bench"
    cells = bench.plan_cells([data], out, tiny_options())
    broken = bench.Cell("gone", "E", 0, cells[0].model, cells[0].recipe,
                        bench.DataSpec(str(tmp_path / "gone")), str(out / "cells/gone/E/seed0"))
    executor = RayExecutor(cpus=1)
    result = bench.run_cells(cells + [broken], out, executor, progress=False)

    assert ray.is_initialized()  # a Ray instance it did not start is left running
    # The worker's DataError comes back as a DataError, the grid goes on.
    assert list(result.failed) == [("gone", "E", 0)]
    message = result.failed[("gone", "E", 0)]
    assert message.startswith(f"dataset folder {tmp_path / 'gone'} does not")
    assert [(r["dataset"], r["method"]) for r in result.rows] == [("shapes", "A"),
                                                                  ("shapes", "E")]
    assert bench.read_results(out) == [{k: r.get(k) for k in bench.RESULT_COLUMNS}
                                       for r in result.rows]
    # The rows are the cells' own: each run folder finished by its worker.
    for row in result.rows:
        assert (out / row["run"] / "metrics.json").exists()
        assert row["params"] > 0 and row["cpu_ms"] > 0

    # Finished cells are not submitted again.
    again = bench.run_cells(cells, out, executor, progress=False)
    assert (again.trained, again.skipped) == (0, 2)


def test_ray_outcome_keeps_the_exception_type(local_ray):
    ((item, outcome),) = RayExecutor().map_unordered(bench.dataset_names, [["/nonexistent/x"]])
    assert item == ["/nonexistent/x"]
    assert isinstance(outcome, ConfigError) and "not found" in str(outcome)


def test_make_executor_checks_options():
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ConfigError, match="--executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ConfigError, match="cpus-per-cell"):
        make_executor("ray", cpus=0)
    with pytest.raises(ConfigError, match="local, ray"):
        make_executor("dask")
