"""``demo --fast`` end to end: the run folder, metrics.json and the report files."""

from __future__ import annotations

import json
from pathlib import Path


def test_demo_fast_end_to_end(bad_input, cli, tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--fast", "--out", out, "--device", "cpu", "--seed", 1)
    assert res.exit_code == 0, res.stderr
    assert "rgbd I-AUROC" in res.stdout and "report.html" in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    cat = metrics["category"]
    for setup in ("rgbd", "rgb"):
        m = metrics[setup][cat]
        for key in ("image_auroc", "pixel_auroc", "aupro"):
            assert m[key] is None or 0.0 <= m[key] <= 1.0
        assert set(m["per_defect_type"]) == set(metrics["defect_modality"])
    assert metrics["defect_modality"]["dent"] == "depth"
    assert "dent: rgbd" in metrics["depth_only_verdict"]
    for name in ("report.md", "report.html", "roc.png", "pro.png", "per_defect_type.png"):
        assert (out / name).is_file(), name
    overlays = sorted(p.name for p in (out / "overlays").glob("*.png"))
    assert {o.split("_")[0] for o in overlays} == {"good", "bump", "dent", "stain", "crack"}
    md = (out / "report.md").read_text()
    assert "Image AUROC per defect type" in md and "overlays/dent_" in md
    html = (out / "report.html").read_text()
    assert "<img src='roc.png'" in html
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary files left
    # a finished demo is never overwritten silently; --resume has nothing left to do
    bad_input(
        cli("demo", "--fast", "--out", out, "--device", "cpu", "--seed", 1),
        str(out),
        "finished run",
    )
    res = cli("demo", "--fast", "--out", out, "--device", "cpu", "--seed", 1, "--resume", "-q")
    assert res.exit_code == 0, res.stderr
    _overwrite_keeps_user_files_inside_the_demo_folders(bad_input, cli, out)


def _overwrite_keeps_user_files_inside_the_demo_folders(bad_input, cli, out):
    """--overwrite moves the demo's folders away and deletes them: one holding a file or folder
    of the user's stops it (it used to delete them with the old run, silently, exit 0)."""
    from threedsr_cli.ownership import OWNED, foreign_file

    # nothing the demo wrote counts as the user's (else --overwrite of a demo could never run)
    assert [foreign_file("demo", out / name) for name in OWNED["demo"]] == [None] * 13
    args = ["demo", "--fast", "--out", out, "--device", "cpu", "--seed", 1, "--overwrite"]
    for mine in ("detector-rgbd/my_notes.txt", "overlays/mine.png", "data/puck/README.txt",
                 "data/mydata/", "detector-rgb/sub/x.bin"):  # fmt: skip
        path = out / mine
        if mine.endswith("/"):
            path.mkdir()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("mine")
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        line = bad_input(cli(*args), "not written by threedsr-cli", "--overwrite would delete")
        assert line.startswith(f"error: {out / mine.split('/')[0]}/"), line
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
        (path.rmdir() if path.is_dir() else path.unlink())


def test_demo_refuses_foreign_folder(bad_input, cli, tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    bad_input(cli("demo", "--fast", "--out", tmp_path), str(tmp_path), "not empty")
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


def test_demo_figures_and_report_name_the_method(tmp_path, monkeypatch):
    """Every figure title and report heading of the demo names the method that made its maps
    (the README: every map, table and report says which one made it); the ROC, PRO and
    per-type figures and the overlays named only the class and the setups."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    import numpy as np
    import threedsr_cli.overlays as overlays_module
    from threedsr_cli import report
    from threedsr_cli.commands.demo_profile import DemoProfile
    from threedsr_cli.commands.demo_report import report_text, write_figures

    titles: list[str] = []

    def capture(*args, title="", **kwargs):
        titles.append(title)
        return next(a for a in args if isinstance(a, Path))  # the figure's file

    for name in ("plot_roc", "plot_pro", "plot_per_defect_type"):
        monkeypatch.setattr(report, name, capture)
    monkeypatch.setattr(overlays_module, "overlay_figure", capture)

    class _UI:
        @contextmanager
        def stage(self, name, total):
            yield lambda *a: None

    profile = DemoProfile.fast()
    cat = profile.category
    setups = ("rgbd", "rgb")
    metrics = {
        s: {cat: {"method": "fused", "image_auroc": 0.5, "pixel_auroc": 0.5, "aupro": 0.5,
                  "per_defect_type": {"dent": 0.5}}}
        for s in setups
    }  # fmt: skip
    scan = SimpleNamespace(rgb=np.zeros((8, 8, 3), np.float32), depth=np.zeros((8, 8), np.float32))
    test = {
        "prepared": {0: scan, 1: scan},
        "labels": [0, 1],
        "types": ["good", "dent"],
        "gts": [None, np.zeros((8, 8), np.float32)],
        "maps": {s: [np.zeros((8, 8), np.float32)] * 2 for s in setups},
        "scores": {s: np.array([0.1, 0.9]) for s in setups},
    }
    scales = {s: SimpleNamespace(range=(0.0, 1.0), threshold=0.5) for s in setups}
    meta = {"defect_types": {"dent": "depth"}}
    drawn = write_figures(_UI(), tmp_path, profile, meta, metrics, test, scales)
    assert len(titles) == 3 + 2 and all("fused" in t for t in titles), titles
    md, page = report_text(profile, meta, metrics, drawn, {"total": 1.0}, tmp_path)
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert [h for h in headings if h != "## Timing" and "fused" not in h] == [], headings
    assert page.count("fused maps") >= 3
    assert "<code>depthsim.scenes</code>" in page and "`" not in page  # no raw Markdown
