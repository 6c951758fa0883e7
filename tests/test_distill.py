"""Knowledge distillation (rrrnet.training.distill): the loss by hand, and a tiny student moving
towards its teacher."""
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import make_meta_album
from rrrnet.cli import main
from rrrnet.errors import ConfigError
from rrrnet.model import ModelConfig, blank
from rrrnet.precision import resolve_precision
from rrrnet.run import Run
from rrrnet.train import DataSpec, Recipe, fit
from rrrnet.training.distill import Distillation, distillation_loss, teacher_precision

MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
RECIPE = Recipe(epochs=4, batch_size=8, ema_epochs=0, warm_stump_epochs=1, image_size=32,
                seed=0)


def test_distillation_loss_by_hand():
    student = torch.tensor([[[1.0, 0.0, -1.0]], [[0.0, 2.0, 0.0]]])   # 2 branches, 1 image
    teacher = torch.tensor([[0.5, 0.5, 0.0]])
    t = 2.0
    p = torch.softmax(teacher / t, -1)[0]

    def kl(q):
        return float((p * (p.log() - q.log())).sum())
    q0, q1 = (torch.softmax(student[b, 0] / t, -1) for b in (0, 1))
    assert distillation_loss(student, teacher, t).item() == pytest.approx(
        t * t * (kl(q0) + kl(q1)), rel=1e-5)
    mean = (q0 + q1) / 2   # the ensemble's softened prediction, counted once per branch
    assert distillation_loss(student, teacher, t, "ensemble").item() == pytest.approx(
        t * t * 2 * kl(mean), rel=1e-5)
    same = teacher.expand(2, 1, 3)
    assert distillation_loss(same, teacher, t).item() == pytest.approx(0.0, abs=1e-6)


def kl_to_teacher(student, teacher, images) -> float:
    with torch.no_grad():
        p = teacher.eval().predict_proba(images)
        q = student.eval().predict_proba(images)
    return float((p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(-1).mean())


@pytest.mark.slow
def test_a_distilled_student_moves_towards_its_teacher(tmp_path):
    root = make_meta_album(tmp_path / "data", classes=4, per_class=12)
    data = DataSpec(str(root), train=8, test=4)
    # A teacher of one epoch: unsure, so its outputs differ clearly from a trained student's.
    fit(data, tmp_path / "teacher", dataclasses.replace(MODEL, branches=1),
        dataclasses.replace(RECIPE, seed=5, epochs=1), progress=False)
    student = dataclasses.replace(MODEL, seed=1)
    plain = fit(data, tmp_path / "plain", student, RECIPE, progress=False)
    taught = fit(data, tmp_path / "taught", student,
                 dataclasses.replace(RECIPE, distill=str(tmp_path / "teacher"), distill_weight=1.0,
                                     distill_temperature=2.0), progress=False)
    from rrrnet.data import ImageDataset
    from rrrnet.metrics import batches
    images = torch.cat([x for x, _ in batches(ImageDataset(data.load().test, size=32), 32, 64)])
    teacher = Run(tmp_path / "teacher").model
    before = kl_to_teacher(plain.model.cpu(), teacher, images)
    after = kl_to_teacher(taught.model.cpu(), teacher, images)
    assert after < 0.5 * before        # the stated margin: at least halved
    assert math.isfinite(taught.history[-1]["loss"])


def test_bad_teachers_are_refused_before_anything_is_written(tmp_path):
    root = make_meta_album(tmp_path / "data", classes=3, per_class=6)
    data = DataSpec(str(root), train=3, test=3)
    with pytest.raises(Exception, match="teacher|run"):
        fit(data, tmp_path / "run", MODEL, dataclasses.replace(RECIPE, distill=str(tmp_path)),
            progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="distill_weight"):
        Recipe(distill_weight=1.5)
    code = main(["fit", str(root), "--out", str(tmp_path / "cli"), "--distill",
                 str(tmp_path / "nothing"), "--arch", "resnet18", "--weights", "none", "-q"])
    assert code == 2 and not (tmp_path / "cli").exists()


def test_the_teacher_runs_in_the_precision_it_was_trained_in():
    def trained(precision):
        return SimpleNamespace(config={"recipe": {} if precision is None else
                                       {"precision": precision}})
    assert [teacher_precision(trained(p)) for p in ("bf16", "auto", "fp16", "fp32", None)] == \
        ["auto", "auto", "auto", "fp32", "fp32"]
    teacher = blank(dataclasses.replace(MODEL, num_classes=3, branches=1))
    student = SimpleNamespace(plan=teacher.plan, freeze_stump=False)
    seen = []
    first_conv = next(m for m in teacher.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda module, inputs, out: seen.append(out.dtype))
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        state = SimpleNamespace(full=student, model=student, device=torch.device("cpu"),
                                data=SimpleNamespace(from_dataset=False),
                                recipe=SimpleNamespace(augment_ops=1, channels_last=False),
                                precision=resolve_precision("fp32", "cpu"),
                                loss=torch.tensor(1.0))
        distill = Distillation(teacher, teacher_precision=name)
        distill.on_fit_start(state)
        seen.clear()
        distill.on_loss(state, (torch.randn(2, 3, 32, 32), None), torch.zeros(2, 2, 3))
        assert seen[0] == dtype        # the student's own precision (fp32) does not decide
        assert torch.isfinite(state.loss)
    # the callback's defaults (the notebook API's) are the recipe's, the study's choice
    assert (distill.temperature, distill.weight, distill.target) == (
        Recipe().distill_temperature, Recipe().distill_weight, Recipe().distill_target) == (
        8.0, 0.5, "branches")


def test_a_teacher_cannot_be_the_run_folder_the_student_writes(tmp_path, capsys):
    root = make_meta_album(tmp_path / "data", classes=3, per_class=6)
    data = DataSpec(str(root), train=4, test=2)
    teacher = tmp_path / "teacher"
    fit(data, teacher, MODEL, dataclasses.replace(RECIPE, epochs=1), progress=False)
    before = (teacher / "model.pt").read_bytes()
    common = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--train", "4",
              "--test", "2", "--epochs", "1", "-q"]
    for out, extra in ((teacher, ["--overwrite"]), (teacher / "inner", [])):
        code = main(["fit", str(root), "--out", str(out), "--distill", str(teacher), *common,
                     *extra])
        assert code == 2
        assert "give the student another --out" in capsys.readouterr().err
    assert (teacher / "model.pt").read_bytes() == before and not (teacher / "inner").exists()
    # The same options from a configuration file, recorded in the student's config.json.
    config = tmp_path / "distill.json"
    config.write_text(json.dumps({"recipe": {"distill": str(teacher), "distill_weight": 0.9,
                                             "distill_temperature": 2.5,
                                             "distill_target": "ensemble"}}))
    assert main(["fit", str(root), "--out", str(tmp_path / "student"), "--config", str(config),
                 *common]) == 0
    recorded = Run(tmp_path / "student").config["recipe"]
    assert (recorded["distill"], recorded["distill_weight"], recorded["distill_temperature"],
            recorded["distill_target"]) == (str(teacher), 0.9, 2.5, "ensemble")


def test_distillation_options_count_only_with_a_teacher():
    """The default temperature changed (4 -> 8, docs/results/distill): a run or benchmark cell
    written at 4 without a teacher trained as it would now, so it still resumes and reads
    back; with a teacher the temperature is part of what must match."""
    from rrrnet.experiments.benchmark import _comparable
    from rrrnet.training.fit import RUN_COMPARISON
    now = {"recipe": dataclasses.asdict(Recipe())}
    before = {"recipe": {**now["recipe"], "distill_temperature": 4.0, "distill_weight": 0.9}}
    older = {"recipe": {k: v for k, v in now["recipe"].items() if not k.startswith("distill")}}
    assert RUN_COMPARISON.differences(before, now) == ""
    assert RUN_COMPARISON.differences(older, now) == ""
    taught = {"recipe": {**before["recipe"], "distill": "teacher"}}
    assert RUN_COMPARISON.differences(taught, {"recipe": {**now["recipe"], "distill": "teacher"}}
                                      ) == ("recipe.distill_temperature: 4.0 -> 8.0; "
                                            "recipe.distill_weight: 0.9 -> 0.5")
    assert _comparable(before)["recipe"] == _comparable(older)["recipe"]
    assert "distill_temperature" in _comparable(taught)["recipe"]
    from rrrnet.experiments.select import _comparable as selection_comparable
    selection = {"model": {}}
    assert (selection_comparable({**selection, **before})
            == selection_comparable({**selection, **now}))
    assert selection_comparable({**selection, **taught})["recipe"]["distill_temperature"] == 4.0
