"""``demo --fast`` end to end: the run folder, metrics.json and the report files."""

from __future__ import annotations

import json


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
