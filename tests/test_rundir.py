"""rrrnet.rundir: claiming, locking and checking run folders (the faults are in
test_reliability.py)."""
import pytest

from rrrnet.errors import ConfigError, RunError
from rrrnet.rundir import (Comparison, claim_folder, clear_run, locked, record, release_folder,
                           verify)


def test_claim_refuses_resumes_or_overwrites(tmp_path):
    out = tmp_path / "run"
    with locked(out):
        assert claim_folder(out, ["a.txt"], resume=False, overwrite=False, what="a run") == []
        (out / "a.txt").write_text("x")
        with pytest.raises(RunError, match="already holds a run.*--resume.*--overwrite"):
            claim_folder(out, ["a.txt"], resume=False, overwrite=False, what="a run")
        assert claim_folder(out, ["a.txt"], resume=True, overwrite=False, what="a run") == ["a.txt"]
        assert claim_folder(out, ["a.txt"], resume=False, overwrite=True, what="a run") == []
        assert not (out / "a.txt").exists()
        with pytest.raises(ConfigError, match="exclude each other"):
            claim_folder(out, [], resume=True, overwrite=True, what="a run")
    release_folder(out)


def test_a_folder_made_only_for_the_lock_goes_away_on_failure(tmp_path):
    with pytest.raises(ValueError):
        with locked(tmp_path / "new"):
            raise ValueError("bad option")
    assert not (tmp_path / "new").exists()


def test_manifest_records_and_verifies(tmp_path):
    (tmp_path / "m.txt").write_text("model")
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "e.json").write_text("{}")
    record(tmp_path, "m.txt", "evaluate/e.json")
    verify(tmp_path / "m.txt")
    verify(tmp_path / "evaluate" / "e.json")
    (tmp_path / "m.txt").write_text("modem")
    with pytest.raises(RunError, match="m.txt is damaged"):
        verify(tmp_path / "m.txt")
    clear_run(tmp_path)
    assert not (tmp_path / "manifest.json").exists() and not (tmp_path / "evaluate").exists()


def test_comparison_fills_defaults_ignores_and_renames():
    compare = Comparison(defaults={"recipe": {"new_option": 1}}, ignore={"recipe": ("device",)},
                         renamed={"old": "new"})
    saved = {"model": {}, "recipe": {"old": 3, "device": "cuda"}, "data": {}, "classes": ["a"]}
    now = {"model": {}, "recipe": {"new": 3, "new_option": 1, "device": "cpu"}, "data": {},
           "classes": ["a"]}
    assert compare.differences(saved, now) == ""
    now["recipe"]["new"] = 4
    assert compare.differences(saved, now) == "recipe.new: 3 -> 4"
