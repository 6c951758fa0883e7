"""``rrrnet card RUN``: RUN/MODEL_CARD.md in the Hugging Face layout (YAML front matter, then the
sections), with the run's own numbers, and a reproduce command that rebuilds the run's
configuration."""
import json
import re
import shlex
import shutil

import pytest

import rrrnet
from conftest import make_meta_album, read_csv
from rrrnet.card import weights_identity, yaml_value
from rrrnet.cli import main, parse
from rrrnet.commands.fit import model_config, recipe

SECTIONS = ("## Model details", "## Uses", "### Intended use", "## Training details",
            "### Training data", "### Weights used", "## Evaluation", "### Per-class results",
            "### Calibration", "## Technical specifications: cost and latency",
            "## Bias, risks, and limitations", "## How to reproduce")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("d") / "tiny", classes=3, per_class=10)
    out = tmp_path_factory.mktemp("r") / "run"
    rec = rrrnet.Recipe(epochs=1, batch_size=8, ema_epochs=1, warm_stump_epochs=1, image_size=32)
    rrrnet.fit(rrrnet.DataSpec(str(root), train=5, val=1, test=4), out,
               rrrnet.ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2,
                                  weights="none"), rec, progress=False)
    assert main(["evaluate", str(out), str(root)]) == 0
    return root, out


def front_matter(text: str) -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the front matter")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_card_writes_the_hugging_face_layout_with_the_runs_numbers(run, capsys):
    root, out = run
    assert main(["card", str(out), "--latency-runs", "0"]) == 0
    assert "MODEL_CARD.md" in capsys.readouterr().out
    text = (out / "MODEL_CARD.md").read_text()
    meta = front_matter(text)
    metrics = json.loads((out / "metrics.json").read_text())
    assert meta["library_name"] == "rrrnet" and meta["pipeline_tag"] == "image-classification"
    assert meta["datasets"] == ["tiny"]
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"] == {"type": "tiny", "name": "tiny", "split": "test"}
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values["error"] == pytest.approx(metrics["error"], abs=1e-6)
    assert values["accuracy"] == pytest.approx(1 - metrics["error"], abs=1e-6)
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    # training data with counts, weights with their identity, the model file's hash
    assert "| class_0 | 5 | 1 | 4 |" in text and "| **all** | 15 | 3 | 12 |" in text
    assert "`none`: random initialisation" in text
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert manifest["model.pt"] in text
    # per-class results from rrrnet evaluate, every class
    per_class = read_csv(out / "evaluate" / "tiny" / "per_class.csv")
    for row in per_class:
        assert f"| {row['class']} | {row['support']} |" in text
    # limitations: the classes with fewer than 10 test images are named
    assert "3 class(es) have fewer than 10 test images (class_0 (4), class_1 (4), class_2 (4))" \
        in text
    assert "- **Latency**: not measured" in text and "MACs per image" in text


def test_the_reproduce_command_rebuilds_the_runs_configuration(run):
    root, out = run
    text = (out / "MODEL_CARD.md").read_text() if (out / "MODEL_CARD.md").exists() else \
        rrrnet.card.card_text(out, latency_runs=0)
    command = re.search(r"```bash\n(rrrnet fit [^\n]+)\n```", text).group(1)
    argv = shlex.split(command)[1:]
    assert argv[:2] == ["fit", str(root)] and str(out / "config.json") in argv
    args = parse(argv)
    config = json.loads((out / "config.json").read_text())
    rebuilt_model = model_config(args).to_dict()
    rebuilt_model.pop("num_classes")               # fit takes the class count from the data
    assert rebuilt_model == {k: v for k, v in config["model"].items() if k != "num_classes"}
    rebuilt = recipe(args)
    for key, value in config["recipe"].items():
        assert getattr(rebuilt, key) == value, key
    assert (args.train, args.val, args.test) == (5, 1, 4)


def test_a_recorded_latency_and_calibration_appear(run, tmp_path):
    root, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "latency.json").write_text(json.dumps({"median_ms": 3.25, "device_name":
                                                   "Test CPU, 2 cores", "batch_size": 1}))
    path = rrrnet.card.write_card(copy)
    text = path.read_text()
    assert path == copy / "MODEL_CARD.md"
    assert "**Latency per image**: 3.25 ms" in text and "Test CPU, 2 cores" in text
    assert "Not calibrated" in text
    with pytest.raises(rrrnet.RunError, match="would overwrite"):
        rrrnet.card.write_card(copy, copy / "config.json")


def test_a_measured_latency_names_the_machine(run, tmp_path):
    _, out = run
    text = rrrnet.card.card_text(out, latency_runs=3)
    line = next(l for l in text.splitlines() if "**Latency per image**" in l)
    assert re.search(r"\d+\.\d\d ms", line) and "threads, batch 1, 3 runs" in line


def test_weights_identity_and_yaml():
    assert weights_identity("none", "resnet18")["sha256"] is None
    tv = weights_identity("imagenet", "resnet18")
    assert tv["name"] == "resnet18.tv_in1k" and tv["sha256"] == "f37072fd"
    assert yaml_value({"a": [1, {"b": "x: y"}], "c": None}) == 'a:\n  - 1\n  - b: "x: y"\nc: null'


def test_card_of_a_missing_run_exits_2(tmp_path, capsys):
    assert main(["card", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
