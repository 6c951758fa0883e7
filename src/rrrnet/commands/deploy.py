"""``quantize``, ``predict``, ``latency``, ``export``: a trained model made fast and shipped."""
from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any, Callable

from ..options import ARCH_NAMES as ARCHS
from .args import add_deploy_args, deploy_options


def add(sub, model_args: Callable[[argparse.ArgumentParser], None],
        model_config: Callable[[argparse.Namespace], Any]) -> None:
    """``model_args`` adds the model options, ``model_config`` reads them (rrrnet.cli's)."""
    qu = sub.add_parser(
        "quantize", help="post-training static int8 model of a run (ONNX Runtime), with its "
                         "fp32/int8 error, latency and size report",
        description="Writes FILE (.onnx: the whole fused network in int8, BatchNorm folded, "
                    "per-channel weight scales) and FILE.report.json; rrrnet latency, predict "
                    "and evaluate accept FILE in place of the run. See docs/inference.md.")
    qu.add_argument("run", help="run folder written by rrrnet fit")
    qu.add_argument("--out", "-o", required=True, help="int8 model file to write (.onnx)")
    qu.add_argument("--calibration", help="dataset folder whose images calibrate the "
                                          "activation ranges (default: the run's training images)")
    qu.add_argument("--images", type=int, default=200, help="calibration images (default 200)")
    qu.add_argument("--format", default="onnx", choices=("onnx",),
                    help="onnx (ONNX Runtime: the quantization path available beside PyTorch "
                         "2.13 on the CPU)")
    qu.add_argument("--runs", type=int, default=100,
                    help="timed rounds at batch 1 for the report (0: no timing)")
    qu.add_argument("--threads", type=int, default=2, help="CPU threads of the timing")
    qu.add_argument("--json", action="store_true", help="print the report as JSON")
    qu.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out file (and its .report.json)")
    qu.set_defaults(func=quantize_command)

    pr = sub.add_parser(
        "predict", help="classes and uncertainty for image files, folders or lists of paths",
        description="One row per image: file, prediction, probability, entropy, "
                    "mutual_information, top{k}_label/top{k}_probability, conformal_set (where "
                    "the run was calibrated by rrrnet uncertainty), abstain (--abstain) and "
                    "error (an image that cannot be read gets a row with the reason; the others "
                    "go on). Exit code: 0 when every image was scored, 1 when any failed, 2 on a "
                    "usage error (a missing run, an empty folder, a bad --out).")
    pr.add_argument("run", help="run folder (rrrnet fit), or a TorchScript/ONNX file of rrrnet "
                                "export, or an int8 ONNX file of rrrnet quantize")
    pr.add_argument("images", nargs="+", metavar="PATH",
                    help="image files, folders (walked recursively, hidden files skipped) or text "
                         "files of image paths (.txt/.lst/.list, one per line)")
    pr.add_argument("--out", "-o", help="predictions file, .csv or .jsonl (default: print)")
    pr.add_argument("--topk", "--top-k", "-k", dest="topk", type=int, default=3,
                    help="classes per row with their probabilities (default 3)")
    pr.add_argument("--abstain", nargs="?", const="entropy", default=None,
                    choices=("entropy", "mutual_information", "max_probability"),
                    help="mark rows whose uncertainty is beyond the run's selective-prediction "
                         "threshold (rrrnet uncertainty: the value keeping 80%% of its images); "
                         "score: entropy (default), mutual_information or max_probability")
    pr.add_argument("--batch-size", type=int, default=32, help="images per model call")
    pr.add_argument("--workers", type=int, default=None,
                    help="threads decoding images ahead of the model (default: cores, at most 4)")
    pr.add_argument("--json", action="store_true", help="print the rows as JSON (without --out)")
    add_deploy_args(pr)
    pr.set_defaults(func=predict_command)

    lat = sub.add_parser("latency", help="inference time per image: median and 95%% interval",
                         description="Time a trained run (RUN) or an untrained model of the "
                                     "model options (random weights: timing does not depend "
                                     "on them), after warm-up.")
    lat.add_argument("run", nargs="?", help="run folder (model.pt) or model file; without it, "
                                            "the model of the model options")
    model_args(lat)
    lat.add_argument("--image-size", type=int, default=None,
                     help="input side in pixels (default: the run's, else 128)")
    lat.add_argument("--batch-size", type=int, default=1)
    lat.add_argument("--device", default="cpu",
                     help="cpu, cuda or auto (default: cpu; CUDA is timed with events)")
    lat.add_argument("--runs", type=int, default=200, help="timed runs (default: 200)")
    lat.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: 10)")
    lat.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    lat.add_argument("--compare", metavar="ARCH", choices=sorted(ARCHS),
                     help="also time this full ResNet (e.g. resnet152), interleaved, and print "
                          "the speed-up")
    lat.add_argument("--looped", action="store_true",
                     help="run the branches one after another instead of fused")
    add_deploy_args(lat)
    lat.add_argument("--json", action="store_true", help="print one JSON object")
    lat.set_defaults(func=partial(latency_command, model_config=model_config))

    ex = sub.add_parser("export", help="write a deployable TorchScript or ONNX model",
                        description="The exported model takes normalised images [N, 3, H, W] "
                                    "and returns the branch logits [branches, N, classes]; its "
                                    "outputs are checked against PyTorch (1e-4).")
    ex.add_argument("run", help="run folder (model.pt) or model file")
    ex.add_argument("--format", "-f", default="torchscript", choices=("torchscript", "onnx"))
    ex.add_argument("--out", "-o", help="file to write (default: RUN/export/model.torchscript.pt "
                                        "or RUN/export/model.onnx)")
    ex.add_argument("--image-size", type=int, default=None,
                    help="side of the check images (default: the run's, else 128)")
    add_deploy_args(ex, compile=False)
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    ex.set_defaults(func=export_command)


def quantize_command(a: argparse.Namespace) -> int:
    from ..quantize import quantize_run
    r = quantize_run(a.run, a.out, a.calibration, a.images, latency_runs=a.runs, threads=a.threads,
                     overwrite=a.overwrite)
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"wrote {r['file']} ({r['bytes_int8'] / 1e6:.1f} MB, fp32 model.pt "
          f"{r['bytes_fp32'] / 1e6:.1f} MB), calibrated on {r['calibration_images']} images")
    if "error_int8" in r:
        print(f"test error: fp32 {r['error_fp32']:.2%}, int8 {r['error_int8']:.2%} "
              f"({r['test_images']} images)")
    for batch in (1, 32):
        if f"batch_{batch}" in r:
            b = r[f"batch_{batch}"]
            print(f"batch {batch}: fp32 {b['fp32_ms']:.2f} ms, int8 {b['int8_ms']:.2f} ms per "
                  f"image: {b['speedup']:.2f}x [{b['speedup_ci95'][0]:.2f}, "
                  f"{b['speedup_ci95'][1]:.2f}]")
    return 0


def predict_command(a: argparse.Namespace) -> int:
    """Exit code 0 when every image was scored, 1 when any could not be read."""
    import sys

    from ..predict import predict_files
    result = predict_files(a.run, a.images, a.out, topk=a.topk, abstain=a.abstain,
                           batch_size=a.batch_size, workers=a.workers, **deploy_options(a))
    failed = result.failed
    if a.out:
        print(f"wrote {len(result.rows)} predictions to {a.out} ({result.predictor.kind} "
              f"{result.predictor.source})" + (f"; {len(failed)} image(s) could not be read: "
                                               f"see the error column" if failed else ""))
    elif a.json:
        print(json.dumps([{k: r.get(k) for k in result.columns} for r in result.rows], indent=2))
    else:
        for r in result.rows:
            if r["error"]:
                print(f"{r['file']}: error: {r['error']}")
                continue
            k = sum(1 for c in result.columns if c.endswith("_label"))
            top = ", ".join(f"{r[f'top{j}_label']} {r[f'top{j}_probability']:.1%}"
                            for j in range(1, k + 1))
            extra = "".join([f"; set {{{', '.join(r['conformal_set'])}}}"
                             if "conformal_set" in r else "",
                             "; ABSTAIN" if r.get("abstain") else ""])
            print(f"{r['file']}: {top}  (entropy {r['entropy']:.3f}, mutual information "
                  f"{r['mutual_information']:.3f}{extra})")
    if failed:
        print(f"rrrnet: {len(failed)} of {len(result.rows)} image(s) could not be read "
              f"(first: {failed[0]['file']}: {failed[0]['error']})", file=sys.stderr)
    return 1 if failed else 0


def latency_command(a: argparse.Namespace, model_config) -> int:
    from ..deploy import latency
    r = latency(a.run or model_config(a), image_size=a.image_size, batch_size=a.batch_size,
                runs=a.runs, warmup=a.warmup, device=a.device, threads=a.threads,
                compare=a.compare, looped=a.looped, **deploy_options(a))
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    where = f"{r['device_name']}, {r['threads']} threads" if r["threads"] else r["device_name"]
    print(f"{r['model']}\n{r['device']} ({where}), batch {r['batch_size']}, {r['image_size']} px, "
          f"{r['runs']} runs: {_ms(r)} per image")
    if "compare" in r:
        print(f"{r['compare']['arch']} (interleaved): {_ms(r['compare'])} per image; "
              f"speed-up {r['ratio']:.2f}x (95% CI {_interval(r['ratio_ci95'], 'x')})")
    return 0


def _ms(r: dict) -> str:
    return f"median {r['median_ms']:.2f} ms (95% CI {_interval(r['ci95_ms'], ' ms')})"


def _interval(pair, unit: str) -> str:
    return "n/a, too few runs" if pair[0] is None else f"{pair[0]:.2f}-{pair[1]:.2f}{unit}"


def export_command(a: argparse.Namespace) -> int:
    from ..deploy import export
    r = export(a.run, a.out, a.format, image_size=a.image_size, overwrite=a.overwrite,
               **deploy_options(a))
    print(json.dumps(r, indent=2) if a.json else
          f"wrote {r['path']} ({r['format']}, {r['bytes'] / 1e6:.1f} MB): input images "
          f"[N, 3, {r['image_size']}, {r['image_size']}], output logits [branches, N, classes]; "
          f"max |difference| to PyTorch {r['max_abs_diff']:.1e} ({r['checked_with']})")
    return 0
