"""Knowledge distillation into the branches (Hinton, Vinyals & Dean 2015): the student learns
from a teacher's softened outputs as well as from the labels. The paper names improving the
ensemble as its future work; a fine-tuned ResNet-152 (baseline [B]) is the natural teacher.

The teacher runs **online**, on exactly the augmented batch the student sees. Caching its
outputs would be wrong or no cheaper here: every epoch draws new augmentations (seeded per
epoch, image and view), so a cache would need one entry per (epoch, image, view), i.e. as many
teacher passes as running it online, plus their storage. (With ``--augment-ops 0`` and a frozen
stump the student trains on cached stump features, which the teacher cannot read: refused.)

The teacher runs in **the precision it was trained in**: a teacher trained with mixed precision
(``--precision bf16|fp16|auto``, as the benchmark's B cells are) runs at the student's device's
fastest one (``auto``: bf16 on a CPU with native bf16, float32 where bf16 would be emulated),
whatever the student's own precision; a float32 teacher in float32. On this project's 2-core
CPU a ResNet-152 teacher's forward pass on a batch of 32 took 2.13 s in float32 and 0.68 s in
bf16 (one thread; ``benchmarks/teacher_precision.py``), most of a distilled E step; its softened
outputs differ from float32's only by bf16's rounding.

The loss of a step, with temperature ``T`` and weight ``w``::

    (1 - w) * CE(labels) + w * T^2 * KL(softmax(teacher / T) || softmax(student / T))

summed over branches like the naive loss. ``target="branches"``: every branch is distilled on
its own; ``"ensemble"``: the average of the branches' softened outputs is, once per branch
(so the two weigh the same against the cross-entropy).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..precision import Precision, resolve_precision
from ..recipe import Recipe
from .events import Callback, TrainState
from .stump import to_device

TARGETS = ("branches", "ensemble")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
                      target: str = "branches") -> torch.Tensor:
    """``T^2 KL(p_teacher || p_student)`` at temperature ``T``, summed over the student's
    branches (``student``: ``[b, N, classes]``; ``teacher``: ``[N, classes]``), mean over
    images."""
    t = temperature
    teacher_log = torch.log_softmax(teacher.float() / t, dim=-1)
    student_log = torch.log_softmax(student / t, dim=-1)            # [b, N, C]
    if target == "ensemble":   # the branches' average softened prediction, counted b times
        b = student.shape[0]
        student_log = (torch.logsumexp(student_log, dim=0) - torch.log(torch.tensor(
            float(b)))).unsqueeze(0).expand_as(student_log)
    kl = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)  # [b, N]
    return kl.mean(dim=1).sum() * t * t


class Distillation(Callback):
    """Adds the distillation term to every step's loss (``on_loss``). ``teacher``: a model
    (e.g. ``rrrnet.Run(path).model``) whose ``predict_proba``-style logits are ``[b, N, C]``
    (its branch logits are averaged in probability: an ensemble teacher is its ensemble).
    The defaults are :class:`rrrnet.Recipe`'s, the distillation study's choice.
    ``teacher_precision``: the precision name its forward pass runs at (``auto``, ``fp32`` ...;
    see :func:`teacher_precision`), resolved on the student's device."""

    order = 15

    def __init__(self, teacher: torch.nn.Module,
                 temperature: float = Recipe.distill_temperature,
                 weight: float = Recipe.distill_weight,
                 target: str = Recipe.distill_target, teacher_precision: str = "fp32"):
        if target not in TARGETS:
            raise ConfigError(f"distill target must be one of {', '.join(TARGETS)}, got {target!r}")
        if not temperature > 0 or not 0 <= weight <= 1:
            raise ConfigError(f"distillation needs temperature > 0 and 0 <= weight <= 1, got "
                              f"{temperature} and {weight}")
        self.teacher, self.temperature, self.weight, self.target = teacher, temperature, weight, target
        self.teacher_precision = teacher_precision
        self.precision: Precision | None = None

    def on_fit_start(self, state: TrainState) -> None:
        teacher_classes = self.teacher.plan.num_classes
        if teacher_classes != state.full.plan.num_classes:
            raise ConfigError(f"the teacher predicts {teacher_classes} classes, the student "
                              f"{state.full.plan.num_classes}; distil from a run on the same "
                              f"classes")
        if state.data.from_dataset and state.model.freeze_stump and state.recipe.augment_ops == 0:
            raise ConfigError("distillation runs the teacher on the training images, and with "
                              "--augment-ops 0 a frozen stump trains on cached features instead; "
                              "use --augment-ops 1 or more")
        self.precision = resolve_precision(self.teacher_precision, state.device)
        self.teacher.to(state.device).eval()
        if state.recipe.channels_last:
            self.teacher.to(memory_format=torch.channels_last)

    def on_loss(self, state: TrainState, batch, outputs: torch.Tensor) -> None:
        x = to_device(batch[0], state.device)
        if x.dim() == 5:   # independent views: the teacher sees each branch's own view
            raise ConfigError("distillation with --branch-views independent is not supported; "
                              "use shared")
        with torch.no_grad(), self.precision.autocast():
            teacher = _ensemble_logits(self.teacher(x).float())
        soft = distillation_loss(outputs, teacher, self.temperature, self.target)
        state.loss = (1 - self.weight) * state.loss + self.weight * soft


def _ensemble_logits(logits: torch.Tensor) -> torch.Tensor:
    """``[b, N, C]`` branch logits -> ``[N, C]`` log of the averaged probabilities."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - torch.log(
        torch.tensor(float(logits.shape[0])))


def check_teacher(path: str | Path, image_size: int, classes: list[str] | None = None,
                  out: str | Path | None = None):
    """The finished run at ``path``, checked to see the same images (size) and, where given,
    the same class names in the same order as the student, and to lie apart from the
    student's run folder ``out`` (which ``--overwrite`` would set aside and ``--resume``
    rewrites); its model is not loaded."""
    from ..run import Run
    if out is not None:
        teacher, student = Path(path).resolve(), Path(out).resolve()
        if teacher == student or student in teacher.parents or teacher in student.parents:
            raise ConfigError(f"the teacher {path} is (or holds, or lies in) the run folder "
                              f"{out} this fit writes; give the student another --out")
    run = Run(path).require_finished()
    if run.image_size != image_size:
        raise ConfigError(f"the teacher {path} was trained at {run.image_size} px, the student "
                          f"at {image_size}; give --image-size {run.image_size}")
    if classes is not None and list(run.classes) != list(classes):
        raise ConfigError(f"the teacher {path} has other classes than this dataset; distil "
                          f"from a run on the same dataset")
    return run


def teacher_precision(run) -> str:
    """The precision a teacher run's forward pass runs at: ``auto`` (the device's fastest) for a
    run trained with mixed precision, ``fp32`` for one trained in float32."""
    trained = str(run.config.get("recipe", {}).get("precision") or "fp32")
    return "fp32" if trained == "fp32" else "auto"


def teacher_from_run(path: str | Path, image_size: int, classes: list[str] | None = None):
    """The finished run at ``path`` as a teacher: its model and :func:`teacher_precision` (see
    :func:`check_teacher`)."""
    run = check_teacher(path, image_size, classes)
    return run.model, teacher_precision(run)
