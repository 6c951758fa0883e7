"""rrrnet.io: the file helpers everything shares."""
import json
import math
import threading
import time

import pytest

from rrrnet.errors import ConfigError, RunError
from rrrnet.io import (atomic_write, derive_seed, exclusive, json_safe, parse_number, read_csv,
                       read_json, resolve_device, write_csv, write_json)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})

    def broken(f):
        f.write("half")
        raise RuntimeError("crash while writing")
    with pytest.raises(RunError, match="could not write .*a.json.*crash while writing.*intact"):
        atomic_write(path, broken, mode="w")   # any failure of the writer: one line, exit 2
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_csv_round_trip_parses_numbers(tmp_path):
    rows = [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "c": None}]
    write_csv(tmp_path / "t.csv", rows)
    assert read_csv(tmp_path / "t.csv") == [{"a": 1, "b": 0.5, "c": "x"},
                                            {"a": 2, "b": None, "c": None}]
    assert read_csv(tmp_path / "missing.csv") == []
    assert [parse_number(t) for t in ("3", "-0.25", "", "1e-3", "abc")] == [3, -0.25, None,
                                                                          0.001, "abc"]


def test_json_safe_and_read_json(tmp_path):
    assert json_safe({"a": (1, math.nan), "b": [float("nan")]}) == {"a": [1, None], "b": [None]}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(RunError, match="bad.json.*not JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(RunError, match="does not exist"):
        read_json(tmp_path / "none.json")


def test_derive_seed_and_devices():
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)
    assert 0 <= derive_seed(5) < 2**32
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        resolve_device("tpu")


def test_exclusive_waits_for_the_holder(tmp_path):
    lock, order = tmp_path / "x.lock", []

    def hold():
        with exclusive(lock):
            order.append("first in")
            time.sleep(0.3)
            order.append("first out")
    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with exclusive(lock):  # flock locks per open file: a second open in this process waits too
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
