"""``rrrnet predict`` on files, folders and lists: one row per image with its columns, an error
row for an unreadable file (exit 1), the same answers from model.pt, TorchScript, ONNX and int8
ONNX files on their own, conformal sets and abstention from the run's calibration, and one-line
errors (exit 2) for bad input."""
import json
import shutil

import pytest
import torch

import rrrnet
from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.data import read_image, normalize
from rrrnet.errors import RunError
from rrrnet.predict import columns, image_paths, open_predictor, predict
from rrrnet.preprocessing import (EXPORT_FORMAT, Preprocessing, model_metadata, read_metadata)

TINY = rrrnet.ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished run with a validation part, calibrated by rrrnet uncertainty."""
    root = make_meta_album(tmp_path_factory.mktemp("d") / "tiny", classes=3, per_class=12)
    out = tmp_path_factory.mktemp("r") / "run"
    recipe = rrrnet.Recipe(epochs=2, batch_size=8, ema_epochs=1, warm_stump_epochs=1,
                           image_size=32)
    rrrnet.fit(rrrnet.DataSpec(str(root), train=6, val=3, test=3), out, TINY, recipe,
               progress=False)
    assert main(["uncertainty", str(out), str(root), "--alpha", "0.3"]) == 0
    return root, out


@pytest.fixture(scope="module")
def folder(run, tmp_path_factory):
    """30 images (nested, one with an upper-case extension) and one broken file; a hidden
    file and a text file that walking must skip."""
    root, _ = run
    images = sorted((root / "images").glob("*.png"))[:30]
    folder = tmp_path_factory.mktemp("new") / "photos"
    (folder / "sub" / "deeper").mkdir(parents=True)
    for i, path in enumerate(images):
        target = folder / ("sub" if i % 3 == 1 else "sub/deeper" if i % 3 == 2 else ".")
        name = path.name.replace(".png", ".PNG") if i == 0 else path.name
        shutil.copy(path, target / name)
    (folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / ".hidden.png").write_bytes(images[0].read_bytes())
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_a_folder_gives_one_row_per_image_and_an_error_row(run, folder, tmp_path, capsys):
    _, out = run
    preds = tmp_path / "preds.csv"
    code = main(["predict", str(out), str(folder), "--out", str(preds), "--topk", "2",
                 "--abstain"])
    printed, err = capsys.readouterr()
    assert code == 1                                          # one image failed
    assert "31 predictions" in printed and "1 of 31 image(s) could not be read" in err
    rows = read_csv(preds)
    assert len(rows) == 31
    assert list(rows[0]) == ["file", "prediction", "probability", "entropy",
                             "mutual_information", "top1_label", "top1_probability",
                             "top2_label", "top2_probability", "conformal_set", "abstain",
                             "error"]
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 1 and failed[0]["file"].endswith("broken.jpg")
    assert "cannot decode image" in failed[0]["error"] and failed[0]["prediction"] == ""
    good = [r for r in rows if not r["error"]]
    assert not any(".hidden" in r["file"] or r["file"].endswith(".txt") for r in rows)
    assert any(r["file"].endswith(".PNG") for r in good)
    classes = {"class_0", "class_1", "class_2"}
    for r in good:
        assert r["prediction"] == r["top1_label"] in classes
        assert float(r["probability"]) >= float(r["top2_probability"]) > 0
        assert float(r["entropy"]) >= 0 and float(r["mutual_information"]) >= 0
        assert set(filter(None, r["conformal_set"].split("|"))) <= classes  # LAC: may be empty
        assert r["abstain"] in ("True", "False")


def test_rows_agree_with_the_model_and_the_run_calibration(run, folder):
    _, out = run
    result = predict(out, [folder], topk=3, abstain="entropy", batch_size=4)
    summary = json.loads((out / "uncertainty" / "uncertainty.json").read_text())
    threshold = summary["selective"]["entropy"]["threshold"]
    conformal = summary["conformal"]
    good = [r for r in result.rows if not r["error"]]
    model = rrrnet.Run(out).model.eval()
    x = torch.stack([normalize(read_image(r["file"], 32)) for r in good])
    with torch.no_grad():
        logits = model(x)
    probs = logits.softmax(-1).mean(0)
    scaled = (logits / summary["temperature"]).softmax(-1).mean(0)
    for i, r in enumerate(good):
        assert r["probability"] == pytest.approx(probs[i].max().item(), abs=1e-4)
        assert r["prediction"] == f"class_{probs[i].argmax().item()}"
        if abs(r["entropy"] - threshold) > 1e-4:   # an image at the threshold: float noise
            assert r["abstain"] == (r["entropy"] > threshold)
        if conformal["threshold"] is None:
            expected = ["class_0", "class_1", "class_2"]
        else:
            expected = [f"class_{c}" for c in range(3)
                        if 1 - scaled[i, c].item() <= conformal["threshold"] + 1e-9]
        assert r["conformal_set"] == expected
    assert sum(r["abstain"] for r in good) >= 1      # the threshold keeps 80% of test images
    assert result.columns == columns(3, 3, True, True) and len(result.failed) == 1


def test_a_list_of_paths_and_jsonl(run, folder, capsys):
    _, out = run
    listed = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))[:4]
    paths = folder.parent / "list.txt"   # relative entries: from the list's own folder
    paths.write_text("# four images\n" + f"{listed[0]}\n"
                     + "\n".join(str(p.relative_to(folder.parent)) for p in listed[1:]) + "\n\n")
    preds = folder.parent / "preds.jsonl"
    assert main(["predict", str(out), str(paths), "--out", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["file"] for r in rows] == [str(p) for p in listed]
    assert all(r["error"] == "" for r in rows)
    assert isinstance(rows[0]["conformal_set"], list) and "top3_label" in rows[0]


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """The run's TorchScript, ONNX and int8 ONNX files, copied away from the run folder."""
    pytest.importorskip("onnxruntime", reason="pip install 'rrrnet[export]'")
    _, out = run
    alone = tmp_path_factory.mktemp("alone")
    files = {}
    for fmt, name in (("torchscript", "model.torchscript.pt"), ("onnx", "model.onnx")):
        assert main(["export", str(out), "--format", fmt, "--out", str(alone / name)]) == 0
        files[fmt] = alone / name
    assert main(["quantize", str(out), "--out", str(alone / "int8.onnx"), "--images", "12",
                 "--runs", "0"]) == 0
    files["int8"] = alone / "int8.onnx"
    return files


def test_exported_files_alone_predict_like_the_run(run, folder, exported):
    _, out = run
    reference = {r["file"]: r for r in predict(out, [folder]).rows if not r["error"]}
    for kind, path in exported.items():
        predictor = open_predictor(path)
        assert predictor.classes == ["class_0", "class_1", "class_2"]
        assert predictor.preprocessing == rrrnet.Run(out).preprocessing
        assert predictor.calibration["conformal"]["alpha"] == 0.3
        rows = {r["file"]: r for r in predict(predictor, [folder], abstain="entropy").rows
                if not r["error"]}
        assert rows.keys() == reference.keys()
        tolerance = 0.05 if kind == "int8" else 1e-4
        agree = sum(rows[f]["prediction"] == reference[f]["prediction"] for f in rows)
        for f, r in rows.items():
            assert r["probability"] == pytest.approx(reference[f]["probability"], abs=tolerance)
        assert agree == len(rows) if kind != "int8" else agree >= 0.9 * len(rows)
        if kind != "int8":
            assert all(rows[f]["conformal_set"] == reference[f]["conformal_set"] for f in rows)


def test_metadata_round_trips_and_refuses_other_versions(tmp_path):
    pre = Preprocessing(image_size=64, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    meta = model_metadata(EXPORT_FORMAT, config={"arch": "resnet18"}, classes=["a", "b"],
                          preprocessing=pre, calibration={"temperature": 2.0})
    assert all(isinstance(v, str) for v in meta.values())
    back = read_metadata(meta, "f.onnx")
    assert back["preprocessing"] == pre and back["classes"] == ["a", "b"]
    assert back["calibration"] == {"temperature": 2.0} and back["image_size"] == 64
    with pytest.raises(RunError, match=r"f.onnx was written by another version of rrrnet "
                                       r"\(format rrrnet-export/9"):
        read_metadata({**meta, "format": "rrrnet-export/9"}, "f.onnx")
    with pytest.raises(RunError, match="carries no rrrnet metadata"):
        read_metadata({}, "f.onnx")
    image = tmp_path / "wide.png"
    from PIL import Image
    Image.new("RGB", (80, 40), (10, 200, 30)).save(image)
    x = pre.tensor(image)
    assert x.shape == (3, 64, 64)
    assert x[:, 0, 32].tolist() == pytest.approx([(1 - 0.5) / 0.25] * 3, abs=0.02)  # white pad
    assert torch.equal(Preprocessing(32).tensor(image), normalize(read_image(image, 32)))


def test_image_paths_walk_and_refuse_an_empty_folder(folder, tmp_path):
    found = image_paths([folder])
    assert len(found) == 31 and folder / ".hidden.png" not in found
    assert folder / "notes.txt" not in found and folder / "sub" / "broken.jpg" in found
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    (tmp_path / "empty" / ".git" / "a.png").write_bytes(b"x")
    with pytest.raises(rrrnet.DataError, match="holds no images"):
        image_paths([tmp_path / "empty"])


# ------------------------------------------------------------------------- bad input: exit 2

def one_line_error(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    return code, lines


def test_bad_input_is_one_line_and_exit_2(run, folder, tmp_path, capsys):
    root, out = run
    (tmp_path / "empty").mkdir()
    code, err = one_line_error(capsys, "predict", out, tmp_path / "empty")
    assert code == 2 and len(err) == 1 and "empty holds no images" in err[0]

    no_model = tmp_path / "no_model"
    no_model.mkdir()
    shutil.copy(out / "config.json", no_model / "config.json")
    code, err = one_line_error(capsys, "predict", no_model, folder)
    assert code == 2 and len(err) == 1 and "no_model holds no trained model (model.pt)" in err[0]

    other_version = tmp_path / "other_version"
    shutil.copytree(out, other_version)
    (other_version / "manifest.json").unlink()
    payload = torch.load(other_version / "model.pt", weights_only=True)
    payload["format"] = "rrrnet-model/2"
    torch.save(payload, other_version / "model.pt")
    code, err = one_line_error(capsys, "predict", other_version, folder)
    assert code == 2 and len(err) == 1
    assert "model.pt was written by another version of rrrnet (format rrrnet-model/2" in err[0]

    mismatched = tmp_path / "mismatched"
    shutil.copytree(out, mismatched)
    (mismatched / "manifest.json").unlink()
    config = json.loads((mismatched / "config.json").read_text())
    config["classes"].append("class_3")
    (mismatched / "config.json").write_text(json.dumps(config))
    code, err = one_line_error(capsys, "predict", mismatched, folder)
    assert code == 2 and len(err) == 1
    assert "predicts 3 classes but names 4" in err[0] and "config.json" in err[0]

    code, err = one_line_error(capsys, "predict", out, folder, "--out", folder / "preds.csv")
    assert code == 2 and len(err) == 1 and "is inside" in err[0] and "photos" in err[0]
    code, err = one_line_error(capsys, "predict", out, folder, "--out", out / "model.pt")
    assert code == 2 and len(err) == 1 and "would overwrite" in err[0] and "model.pt" in err[0]
    image = next(folder.glob("*.png"))
    code, err = one_line_error(capsys, "predict", out, image, "--out", image)
    assert code == 2 and "would overwrite" in err[0]
    code, err = one_line_error(capsys, "predict", out, folder, "--out", tmp_path / "p.xlsx")
    assert code == 2 and ".csv or .jsonl" in err[0]
    code, err = one_line_error(capsys, "predict", out, folder, "--abstain", "--out",
                               tmp_path / "p.csv")
    assert code == 1   # calibrated: fine (the broken image fails)
    uncalibrated = tmp_path / "uncalibrated"
    shutil.copytree(out, uncalibrated, ignore=shutil.ignore_patterns("uncertainty"))
    code, err = one_line_error(capsys, "predict", uncalibrated, folder, "--abstain")
    assert code == 2 and "rrrnet uncertainty" in err[0]
    assert all("Traceback" not in line for line in err)


def test_an_exported_file_with_wrong_class_names_or_version_is_refused(exported, folder,
                                                                        tmp_path, capsys):
    import onnx
    model = onnx.load(str(exported["onnx"]))
    for prop in model.metadata_props:
        if prop.key == "classes":
            prop.value = json.dumps(["a", "b"])
    onnx.save(model, str(tmp_path / "wrong.onnx"))
    code, err = one_line_error(capsys, "predict", tmp_path / "wrong.onnx", folder)
    assert code == 2 and "predicts 3 classes but names 2" in err[0]
    for prop in model.metadata_props:
        if prop.key == "format":
            prop.value = "rrrnet-export/2"
    onnx.save(model, str(tmp_path / "newer.onnx"))
    code, err = one_line_error(capsys, "predict", tmp_path / "newer.onnx", folder)
    assert code == 2 and "written by another version of rrrnet" in err[0]
    code, err = one_line_error(capsys, "predict", exported["onnx"], folder, "--out",
                               exported["onnx"].with_suffix(".csv"))
    assert code == 1   # beside the model is fine
    code, err = one_line_error(capsys, "predict", exported["torchscript"], folder, "--out",
                               exported["torchscript"])
    assert code == 2 and "would overwrite" in err[0]
