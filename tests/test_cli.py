import json
import subprocess
import sys
from pathlib import Path

import pytest

from analytic import counts
from rrrnet.cli import main
from rrrnet.model import load


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_for_the_default_model(capsys):
    code, out, _ = run(capsys, "info", "--arch", "resnet152", "--blocks", "1,1,1,1", "--branches",
                       "8", "--num-classes", "20", "--image-size", "128", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["shift"] == 11 and data["branch_planes"] == [79, 170]
    assert (data["params"], data["macs"]) == counts("resnet152", (1, 1, 1, 1), 20, 128, 8, [79, 170])
    assert [row["stage"] for row in data["stages"]] == ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert isinstance(data["params"], int) and isinstance(data["macs"], int)


def test_info_full_resnet152(capsys):
    code, out, _ = run(capsys, "info", "--blocks", "3,8,36,3", "--branches", "1", "--num-classes",
                       "1000", "--image-size", "224", "--json")
    data = json.loads(out)
    assert data["params"] == 60_192_808 and data["shift"] == 0


def test_info_table_and_explicit_shift(capsys):
    code, out, _ = run(capsys, "info", "--shift", "0", "--split-at", "layer4")
    assert code == 0
    assert "a=0" in out and "181 x 8" in out and "layer3" in out


@pytest.mark.parametrize("argv,message", [
    (["info", "--branches", "0"], "branches"),
    (["info", "--blocks", "1,1,1,4"], "layer4 has 3 blocks"),
    (["info", "--blocks", "a,b"], "blocks"),
    (["info", "--branches", "100000"], "fewer branches"),
    (["build", "--weights", "no-such-source", "-o", "x.pt"], "unknown weights source"),
    (["build", "--weights", "missing.pth", "-o", "x.pt"], "does not exist"),
    (["weights", "--fetch", "model.pth"], "not a named source"),
    (["weights", "--check", "none"], "nothing to check"),
])
def test_user_errors_exit_2_without_traceback(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_build_command_writes_a_loadable_model(capsys, tmp_path):
    out_file = tmp_path / "model.pt"
    code, out, _ = run(capsys, "build", "--arch", "resnet18", "--branches", "2", "--num-classes", "3",
                       "--weights", "none", "-o", str(out_file), "-q")
    assert code == 0 and "2 branches" in out
    assert load(out_file).config.branches == 2


def test_weights_listing(capsys):
    code, out, _ = run(capsys, "weights")
    assert code == 0
    assert "resnet152.a1h_in1k" in out and "resnet152-394f9c45.pth" in out and "astra-ct" in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "rrrnet"
    result = subprocess.run([str(script), "info", "--branches", "2", "--json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["config"]["branches"] == 2
    bad = subprocess.run([str(script), "info", "--blocks", "1,1,1,0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("rrrnet: error:") and "Traceback" not in bad.stderr


def _fit(tmp_path, data, *extra):
    return main(["fit", str(data), "--out", str(tmp_path / "run"), "--arch", "resnet18",
                 "--branches", "2", "--weights", "none", "--epochs", "1", "--image-size", "32",
                 "--train", "3", "--test", "3", "-q", *extra])


def test_fit_reports_bad_datasets_without_traceback(tmp_path, capsys):
    from conftest import make_meta_album
    data = make_meta_album(tmp_path / "d", classes=3, per_class=6)
    (data / "images" / "c1_2.png").write_bytes(b"not a png")
    assert _fit(tmp_path, data) == 2
    err = capsys.readouterr().err
    # unreadable files are always left out; a class then short of images names them
    assert "'class_1' has 5" in err and "images/c1_2.png (unreadable" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    (data / "labels.csv").unlink()
    assert _fit(tmp_path, data) == 2
    assert "labels.csv" in capsys.readouterr().err
    assert _fit(tmp_path, tmp_path / "nowhere") == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written for a dataset that cannot be read


def test_fit_reports_too_few_images(tmp_path, capsys):
    from conftest import make_meta_album
    data = make_meta_album(tmp_path / "d", classes=3, per_class=4)
    assert _fit(tmp_path, data) == 2  # 3 train + 3 test > 4 per class
    err = capsys.readouterr().err
    assert "class_0" in err and "Traceback" not in err


def test_fit_skips_bad_images_and_lists_them(tmp_path, capsys):
    from conftest import make_meta_album
    data = make_meta_album(tmp_path / "d", classes=3, per_class=7)
    (data / "images" / "c1_2.png").write_bytes(b"not a png")
    # --skip-bad-images is still accepted, and changes nothing: bad files are always left out
    assert _fit(tmp_path, data, "--skip-bad-images", "--warm-stump-epochs", "0",
                "--ema-epochs", "0") == 0
    skipped = (tmp_path / "run" / "skipped.csv").read_text().splitlines()
    assert skipped[0] == "file,reason" and skipped[1].startswith("images/c1_2.png,unreadable")


def test_data_command_lists_and_runs_converters(capsys, tmp_path):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fashion-mnist", "mnist", "icdar-stand-in"))
    assert main(["data", "icdar-stand-in", str(tmp_path / "icdar"), "--per-class", "2"]) == 0
    assert len(list((tmp_path / "icdar" / "images").iterdir())) == 40
    assert main(["data", "imagenet", str(tmp_path / "x")]) == 2
    assert "unknown converter" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    assert "icdar-stand-in" in capsys.readouterr().out


def test_old_option_spellings_still_work(tmp_path):
    """--warm-stem-epochs (hidden alias of --warm-stump-epochs) and a config file written with
    the old recipe key both load."""
    from rrrnet.cli import parser
    from rrrnet.experiments.methods import load_config_file
    from rrrnet.options import ARCH_NAMES
    from rrrnet.backbone import ARCHS
    args = parser().parse_args(["fit", "data", "--out", "run", "--warm-stem-epochs", "3"])
    assert args.warm_stump_epochs == 3
    assert "--warm-stem-epochs" not in parser().format_help()
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"recipe": {"warm_stem_epochs": 2}}))
    assert load_config_file(path)["recipe"] == {"warm_stump_epochs": 2}
    assert ARCH_NAMES == tuple(ARCHS)  # the torch-free names are the backbone's
