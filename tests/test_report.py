"""``rrrnet report``: one self-contained HTML page of a run or of a benchmark (figures as data
URIs, no script, no link), what it holds, an unfinished run, and the page rendered in headless
Chromium with no console errors and figures of non-zero size."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

import rrrnet
from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.interpret import balanced_error

BENCHMARK = Path(__file__).parents[1] / "docs" / "results" / "benchmark"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is absent: apt-get install -y chromium (Debian's "
                             "package; .ci/run installs it) to render the report in a browser")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished run that errs (6 classes, one epoch from random weights), with a
    validation part, evaluated and calibrated."""
    root = make_meta_album(tmp_path_factory.mktemp("d") / "shapes", classes=6, per_class=10)
    out = tmp_path_factory.mktemp("r") / "run"
    recipe = rrrnet.Recipe(epochs=1, batch_size=8, ema_epochs=1, warm_stump_epochs=1,
                           image_size=32)
    rrrnet.fit(rrrnet.DataSpec(str(root), train=5, val=2, test=3), out,
               rrrnet.ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2,
                                  weights="none"), recipe, progress=False)
    assert main(["uncertainty", str(out), str(root)]) == 0
    return root, out


class Page(HTMLParser):
    """Every tag with its attributes, and the text of <style>."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.style = ""
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data

    def images(self) -> list[Image.Image]:
        out = []
        for tag, attrs in self.tags:
            if tag == "img":
                src = attrs["src"]
                assert src.startswith("data:image/png;base64,"), src[:60]
                out.append(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
        return out


def assert_self_contained(text: str) -> Page:
    page = Page(text)
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "base", "video", "audio"}
    for tag, attrs in page.tags:
        for key, value in attrs.items():
            if key in ("src", "href", "srcset", "action", "data", "poster"):
                assert value.startswith("data:"), f"<{tag} {key}={value[:80]}>"
    assert "url(" not in page.style and "@import" not in page.style
    return page


def test_the_run_page_is_self_contained_and_holds_the_analysis(run, capsys):
    root, out = run
    assert main(["report", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (out / "report.html").read_text()
    page = assert_self_contained(text)
    images = page.images()
    # learning curves, confusion, top losses, reliability (evaluate), risk-coverage (uncertainty)
    assert len(images) == 5 and all(i.size[0] > 100 and i.size[1] > 50 for i in images)
    for heading in ("Configuration", "Data", "Learning curves", "What the model gets wrong",
                    "Per class", "Most confidently wrong", "Calibration and uncertainty"):
        assert f">{heading}" in text
    assert "Finished: 1 epochs trained" in text and "Unfinished" not in text
    # report ran evaluate on the run's own dataset: its numbers are on the page
    analysis = out / "evaluate" / "shapes"
    per_class = read_csv(analysis / "per_class.csv")
    assert all(f'<td class="l">class_{i}</td>' in text for i in range(6))
    counts = [[int(r[f"class_{j}"]) for j in range(6)] for r in read_csv(analysis / "confusion.csv")]
    import numpy as np
    expected = balanced_error(np.array(counts))
    assert f"{100 * expected:.1f}%" in text and len(per_class) == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{100 * metrics['error']:.1f}%" in text
    from rrrnet.cost import cost
    params = cost(rrrnet.Run(out).model.config, image_size=32).params
    assert f"{params / 1e6:.2f} M" in text
    assert "temperature" in text and "conformal sets" in text
    for top in read_csv(analysis / "top_losses.csv"):
        assert Path(top["file"]).name in text


def test_balanced_error_from_the_confusion_and_the_split_files(run, tmp_path, capsys):
    root, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "manifest.json").unlink()
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics.pop("balanced_error", None)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (copy / "split.csv").write_text("file,label,part\na.png,class_0,train\nb.png,class_0,test\n"
                                    "c.png,class_1,train\n")
    (copy / "skipped.csv").write_text("file,reason\nx.txt,not an image (extension '.txt')\n"
                                      "y.png,empty file (0 bytes)\n")
    assert main(["report", str(copy), "--out", str(tmp_path / "page.html")]) == 0
    text = (tmp_path / "page.html").read_text()
    counts = [[int(r[f"class_{j}"]) for j in range(6)]
              for r in read_csv(copy / "evaluate" / "shapes" / "confusion.csv")]
    import numpy as np
    assert f"{100 * balanced_error(np.array(counts)):.1f}%" in text
    assert "counted from the run" in text and "Files left out: 2" in text
    assert "not an image" in text and "y.png" in text


def test_an_unfinished_run_says_so(run, tmp_path):
    _, out = run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished, ignore=shutil.ignore_patterns("evaluate", "uncertainty"))
    (unfinished / "model.pt").unlink()
    (unfinished / "metrics.json").unlink()
    assert main(["report", str(unfinished)]) == 0
    text = (unfinished / "report.html").read_text()
    assert "Unfinished run: training has not finished (1 of 1 epochs" in text
    assert "the run has no trained model yet" in text
    assert_self_contained(text)


def test_the_benchmark_page_and_a_benchmark_cell(tmp_path):
    assert main(["report", str(BENCHMARK), "--out", str(tmp_path / "bench.html")]) == 0
    text = (tmp_path / "bench.html").read_text()
    page = assert_self_contained(text)
    figures = sorted((BENCHMARK / "figures").glob("*.png"))
    assert len(page.images()) == len(figures) >= 4
    rows = read_csv(BENCHMARK / "results.csv")
    assert f"Every cell ({len(rows)})" in text
    for method in {r["method"] for r in rows}:
        assert f'<td class="l">{method}</td>' in text
    # a cell of the benchmark: its run page compares it with the others on its dataset
    cell = BENCHMARK / "cells" / "emoji" / "E" / "seed0"
    assert main(["report", str(cell), "--out", str(tmp_path / "cell.html")]) == 0
    text = (tmp_path / "cell.html").read_text()
    assert "In its benchmark: emoji" in text and '<tr class="me">' in text
    assert "model.pt is not here" in text
    assert not (cell / "report.html").exists() and not (cell / "evaluate").exists()


def test_bad_input_exits_2_with_one_line(run, tmp_path, capsys):
    _, out = run
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(out), "--out", str(out / "config.json")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "ending in .html" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "plain").mkdir()
    assert main(["report", str(tmp_path / "plain")]) == 2
    assert "not a run folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------ Chromium

CHECK = """<script>window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message ||
  (e.target && (e.target.src || '').slice(0, 80)) || e.type)), true);
window.addEventListener('load', () => {
  const out = document.createElement('pre'); out.id = 'rrrnet-check';
  out.textContent = JSON.stringify({errors: window.__errors, images: [...document.images].map(
    i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width,
          i.getBoundingClientRect().height])});
  document.body.appendChild(out);
});</script>"""


def render(page: Path, tmp_path: Path) -> tuple[dict, str]:
    """The page in headless Chromium, with a checking script injected first in <head>: what it
    found after loading, and Chromium's log (console messages included)."""
    checked = tmp_path / f"checked-{page.name}"
    checked.write_text(page.read_text().replace("<head>", "<head>" + CHECK, 1))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,2000",
         "--host-resolver-rules=MAP * ~NOTFOUND", checked.as_uri()],
        capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="rrrnet-check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"Chromium gave no result (exit {result.returncode}): {result.stderr[-2000:]}"
    import html
    return json.loads(html.unescape(found.group(1))), result.stderr


@NEEDS_CHROMIUM
def test_the_pages_render_in_chromium(run, tmp_path):
    _, out = run
    if not (out / "report.html").exists():
        assert main(["report", str(out)]) == 0
    assert main(["report", str(BENCHMARK), "--out", str(tmp_path / "bench.html")]) == 0
    for page, count in ((out / "report.html", 5), (tmp_path / "bench.html", None)):
        found, log = render(page, tmp_path)
        assert found["errors"] == []
        console = [line for line in log.splitlines() if ":CONSOLE" in line]
        assert console == [], console
        images = found["images"]
        assert images and (count is None or len(images) == count)
        for natural_w, natural_h, shown_w, shown_h in images:
            assert natural_w > 0 and natural_h > 0 and shown_w > 0 and shown_h > 0


@NEEDS_CHROMIUM
def test_a_screenshot_of_the_page(run, tmp_path):
    _, out = run
    if not (out / "report.html").exists():
        assert main(["report", str(out)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", (out / "report.html").as_uri()],
                   capture_output=True, text=True, timeout=180)
    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50   # a rendered page, not a blank one
    assert os.path.getsize(shot) > 20_000
