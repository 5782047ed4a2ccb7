"""Issue 14 / 24 regression suite: bad input, reused and shared folders, table-driven.

Each case states the command, the exit code, a fragment of the one stderr line (naming the file)
and the state of the data, run and output folders before and after, compared byte for byte:
an error case changes nothing at all (unless it names what it may change: predict's partial
output); a success case changes only what it names. Each case works on private copies of the
session's tiny dataset and trained run (``conftest.py``); ``around`` wraps the command in a
context (a held folder lock, another working directory, a wide terminal).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

CATEGORY = "puck"


@dataclass
class Ctx:
    root: Path
    data: Path
    run: Path
    out: Path

    @property
    def xyz(self) -> Path:  # the first training scan
        return sorted((self.data / CATEGORY / "train" / "good" / "xyz").glob("*.tiff"))[0]

    @property
    def test_dent(self) -> Path:
        return self.data / CATEGORY / "test" / "dent"


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx], list[Any]]
    code: int
    fragment: Callable[[Ctx], str] | str | None
    setup: Callable[[Ctx], None] | None = None
    #: paths (relative to the case root) that may change; everything else stays byte-identical
    changes: tuple[str, ...] = ()
    check: Callable[[Ctx, Any], None] | None = None
    extra_fragments: tuple[str, ...] = field(default=())
    #: False for usage errors, which typer prints as a usage line and a box
    one_line: bool = True
    #: a context the command runs in (entered after the "before" snapshot)
    around: Callable[[Ctx], AbstractContextManager[Any]] | None = None


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: file sha256 + mode, folder, or link target."""
    state: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                state[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                state[rel] = ("dir",)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                state[rel] = ("file", digest, p.stat().st_mode & 0o777)
    return state


def _diff(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


# --------------------------------------------------------------------------- helpers


def _train(c: Ctx, *extra: Any, out: Path | None = None, data: Path | None = None) -> list[Any]:
    return [
        "train", "--method", "fused", "--data", data or c.data, "--category", CATEGORY,
        "--out", out or c.run,
        "--setup", "rgbd", "--iterations", 2, "--batch-size", 2, "--size", 64,
        "--device", "cpu", "-q", *extra,
    ]  # fmt: skip


def _same_run(c: Ctx, *extra: Any) -> list[Any]:
    """The command that trained the run fixture (its data and backbone, from run.json): ``_train``
    alone uses the data copy and the shipped pretrained backbone, a different run."""
    settings = json.loads((c.run / "run.json").read_text())["settings"]
    args = _train(c, "--dada", settings["dada"], *extra, data=Path(settings["data"]))
    return args


def _eval(c: Ctx, *extra: Any) -> list[Any]:
    return ["eval", "--run", c.run, "--data", c.data, "--device", "cpu", "-q", *extra]


def _predict(c: Ctx, *extra: Any) -> list[Any]:
    return ["predict", "--run", c.run, c.test_dent, "--device", "cpu", "-q", *extra]


def _truncate(p: Path, n: int = 200) -> None:
    p.write_bytes(p.read_bytes()[:n])


def _user_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "mydata").mkdir()
    (folder / "mydata" / "x.bin").write_bytes(b"\x00\x01")


def _old_prediction(c: Ctx) -> None:
    c.out.mkdir()
    (c.out / "old_overlay.png").write_bytes(b"old png")
    (c.out / "old_map.png").write_bytes(b"old map")
    scores = {"run": "/elsewhere/run", "samples": [
        {"name": "old", "overlay": "old_overlay.png", "map": "old_map.png", "score": 0.5}]}  # fmt: skip
    (c.out / "scores.json").write_text(json.dumps(scores))


def _metrics(
    c: Ctx, content: dict[str, Any], folder: Path | None = None, record: bool = True
) -> None:
    """metrics.json / metrics.md in ``folder`` (default --out): as an earlier eval wrote them
    (``record``: listed with their SHA-256 in .threedsr-written.json), or by hand."""
    folder = folder or c.out
    folder.mkdir(exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(content))
    (folder / "metrics.md").write_text("old table\n")
    if record:
        _record(folder, "metrics.json", "metrics.md")


def _record(folder: Path, *names: str) -> None:
    """What the tool's record says after it wrote ``names`` (see outputs.commit_outputs)."""
    files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    manifest = {"kind": "threedsr.written", "files": files}
    (folder / ".threedsr-written.json").write_text(json.dumps(manifest))


def _unfinished(c: Ctx) -> None:
    import torch

    ckpt = torch.load(c.run / "detector.pt", weights_only=True)
    ckpt.update(finished=False, step=1)
    torch.save(ckpt, c.run / "detector.pt")


def _symlink_loop(p: Path) -> None:
    a = p.parent / (p.name + "-b")
    os.symlink(a, p)
    os.symlink(p, a)


def _demo_marker(c: Ctx) -> None:
    c.out.mkdir()
    profile = {f"setting_{i}": {"nested": list(range(20)), "k": i} for i in range(30)}
    marker = {"kind": "demo", "finished": True, "settings": {"fast": True, "seed": 0,
              "stage1": False, "profile": profile}}  # fmt: skip
    (c.out / "run.json").write_text(json.dumps(marker))


def _remove_mask(c: Ctx) -> None:
    (c.test_dent / "gt" / "000.png").unlink()


def _check_train_kept_user_files(c: Ctx, res: Any) -> None:
    assert (c.run / "notes.txt").read_text() == "my notes"
    assert (c.run / "mydata" / "x.bin").read_bytes() == b"\x00\x01"
    marker = json.loads((c.run / "run.json").read_text())
    assert marker["finished"] and marker["settings"]["dada"] == "pretrained"
    assert not (c.run / ".overwritten").exists()
    for name in ("detector.pt", "train_state.pt", "train_history.json", "run.json"):
        assert (c.run / name).stat().st_mode & 0o777 == 0o644, name


def _check_metrics_new(c: Ctx, res: Any) -> None:
    m = json.loads((c.out / "metrics.json").read_text())
    assert set(m) == {CATEGORY} and "image_auroc" in m[CATEGORY]
    assert m[CATEGORY]["detector"] == str((c.run / "detector.pt").resolve())
    for name in ("metrics.json", "metrics.md"):
        assert (c.out / name).stat().st_mode & 0o777 == 0o644
    names = sorted(p.name for p in c.out.iterdir())
    assert names == [".threedsr-written.json", "metrics.json", "metrics.md"], names
    record = json.loads((c.out / ".threedsr-written.json").read_text())["files"]
    for name in ("metrics.json", "metrics.md"):
        assert record[name] == hashlib.sha256((c.out / name).read_bytes()).hexdigest()


def _check_warned(fragment: str) -> Callable[[Ctx, Any], None]:
    def check(c: Ctx, res: Any) -> None:
        warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
        assert len(warnings) == 1 and fragment in warnings[0], res.stderr
        assert "Traceback" not in res.stderr

    return check


def _check_prediction_replaced(c: Ctx, res: Any) -> None:
    names = sorted(p.name for p in c.out.iterdir())
    assert names == ["dent_000_map.png", "dent_000_overlay.png", "scores.json"], names
    assert json.loads((c.out / "scores.json").read_text())["run"] == str(c.run)
    assert all((c.out / n).stat().st_mode & 0o777 == 0o644 for n in names)


# --------------------------------------------------------------------------- issue 24 helpers


def _run(*args: Any) -> Any:
    """The CLI in-process (as the ``cli`` fixture), for a case's setup or check."""
    from .conftest import invoke

    return invoke(*args)


def _export(c: Ctx, *extra: Any, out: Path | None = None) -> list[Any]:
    return ["export", "--run", c.run, "--format", "torchscript", "--out", out or c.out / "d.pt",
            "-q", *extra]  # fmt: skip


def _exported(c: Ctx, *extra: Any) -> None:
    """An earlier export at out/d.pt (+ its sidecar), written by the tool."""
    c.out.mkdir(exist_ok=True)
    res = _run(*_export(c, *extra))
    assert res.exit_code == 0, res.stderr


def _exported_then_threshold_edited(c: Ctx) -> None:
    """An earlier export whose sidecar's threshold was set by hand (the model file unchanged)."""
    _exported(c)
    meta = _sidecar(c)
    meta["threshold"] = 0.123
    (c.out / "d.pt.json").write_text(json.dumps(meta, indent=2) + "\n")


def _sidecar(c: Ctx) -> dict[str, Any]:
    return json.loads((c.out / "d.pt.json").read_text())


def _check_export_replaced(c: Ctx, res: Any) -> None:
    from threedsr.export_sidecar import read_sidecar

    assert read_sidecar(c.out / "d.pt")["threshold"] == 0.5  # file and sidecar agree


def _check_export_threshold(c: Ctx, res: Any) -> None:
    import threedsr

    meta = _sidecar(c)
    display = threedsr.detector_info(c.run / "detector.pt").display
    assert isinstance(meta["threshold"], float) and meta["threshold"] == display.threshold


def _hold_lock(folder: Callable[[Ctx], Path]) -> Callable[[Ctx], AbstractContextManager[Any]]:
    """Another writer holds the folder's lock while the command runs."""

    def hold(c: Ctx) -> AbstractContextManager[Any]:
        from threedsr_cli.locks import folder_lock

        return folder_lock(folder(c))

    return hold


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Run from another working directory (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(folder):
        yield


@contextlib.contextmanager
def _wide_terminal() -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "250"
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _help_shows(*texts: str, absent: tuple[str, ...] = ()) -> Callable[[Ctx, Any], None]:
    def check(c: Ctx, res: Any) -> None:
        for t in texts:
            assert t in res.stdout, (t, res.stdout)
        for t in absent:
            assert t not in res.stdout, (t, res.stdout)

    return check


def _check_threshold_metavar(c: Ctx, res: Any) -> None:
    with _wide_terminal():
        other = _run("predict", "--help").stdout
    for text in (res.stdout, other):
        row = next(ln for ln in text.splitlines() if "--threshold" in ln)
        assert "<auto|number>" in row, row


def _predict_both(c: Ctx) -> None:
    """The good scan predicted among others, into root/both."""
    good = c.data / CATEGORY / "test" / "good"
    res = _run("predict", "--run", c.run, c.test_dent, good, "--out", c.root / "both",
                 "--device", "cpu", "-q")  # fmt: skip
    assert res.exit_code == 0, res.stderr


def _check_same_picture(c: Ctx, res: Any) -> None:
    for name in ("good_000_map.png", "good_000_overlay.png"):
        assert (c.out / name).read_bytes() == (c.root / "both" / name).read_bytes(), name
    alone, among = (json.loads((f / "scores.json").read_text()) for f in (c.out, c.root / "both"))
    assert alone["map_scale"] == among["map_scale"] and alone["scale_source"] == "detector"


def _eval_into(c: Ctx, folder: Path | None = None) -> None:
    """An earlier eval (its metrics recorded as the tool's)."""
    extra = [] if folder is None else ["--out", folder]
    res = _run(*_eval(c, *extra))
    assert res.exit_code == 0, res.stderr


def _check_hand_metrics_kept(c: Ctx, res: Any) -> None:
    assert (c.run / "metrics.json").read_text() == json.dumps({CATEGORY: {"mine": 1}})
    assert (c.run / "metrics.md").read_text() == "old table\n"
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert any("metrics.json: kept" in w for w in warnings), res.stderr


def _check_recorded_metrics_replaced(c: Ctx, res: Any) -> None:
    assert not (c.run / "metrics.json").exists() and not (c.run / "metrics.md").exists()
    assert json.loads((c.run / "run.json").read_text())["finished"]


def _non_utf8_inputs(c: Ctx) -> None:
    folder = os.fsencode(c.root / "in")
    os.mkdir(folder)
    good = c.data / CATEGORY / "test" / "good"
    shutil.copy(good / "xyz" / "000.tiff", folder + b"/\xff_xyz.tiff")
    shutil.copy(good / "rgb" / "000.png", folder + b"/\xff_rgb.png")


def _check_non_utf8_prediction(c: Ctx, res: Any) -> None:
    names = sorted(p.name for p in c.out.iterdir())
    assert names == ["\\xff_map.png", "\\xff_overlay.png", "scores.json"], names
    sample = json.loads((c.out / "scores.json").read_text(encoding="utf-8"))["samples"][0]
    assert sample["name"] == "\\xff" and sample["xyz"].endswith("/\\xff_xyz.tiff")


def _non_utf8_defect_type(c: Ctx) -> None:
    os.rename(os.fsencode(c.test_dent), os.fsencode(c.test_dent.parent) + b"/d\xffnt")


def _check_non_utf8_metrics(c: Ctx, res: Any) -> None:
    m = json.loads((c.out / "metrics.json").read_text(encoding="utf-8"))
    assert "d\\xffnt" in m[CATEGORY]["per_defect_type"]
    assert "| d\\xffnt |" in (c.out / "metrics.md").read_text(encoding="utf-8")


def _relative_data_run(c: Ctx) -> None:
    """A run trained from root with a relative --data, then moved to root/moved."""
    with contextlib.chdir(c.root):
        res = _run("train", "--data", "data", "--category", CATEGORY, "--out", "r",
                     "--size", 64, "--device", "cpu", "-q")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    shutil.move(c.root / "r", c.root / "moved")


def _check_auto_threshold(c: Ctx, res: Any) -> None:
    scores = json.loads((c.out / "scores.json").read_text())
    assert str(c.data / CATEGORY) in scores["threshold_source"], scores["threshold_source"]


def _copied_run(c: Ctx) -> None:
    _eval_into(c)  # metrics.json in the run folder, naming its detector
    shutil.copytree(c.run, c.root / "copy", symlinks=True)


def _check_copied_eval(c: Ctx, res: Any) -> None:
    entry = json.loads((c.root / "copy" / "metrics.json").read_text())[CATEGORY]
    assert entry["detector"] == "detector.pt" and len(entry["detector_sha256"]) == 64


def _bad_pair(c: Ctx, name: str = "b") -> None:
    bad = c.root / "bad"
    bad.mkdir(exist_ok=True)
    good = c.data / CATEGORY / "test" / "good"
    shutil.copy(good / "xyz" / "000.tiff", bad / f"{name}_xyz.tiff")
    (bad / f"{name}_rgb.png").write_bytes((good / "rgb" / "000.png").read_bytes()[:100])


def _check_skipped(c: Ctx, res: Any) -> None:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("warning: ") and str(c.root / "bad" / "b_rgb.png") in lines[0]
    assert lines[1].startswith("error: ") and "1 of 2 inputs skipped" in lines[1]
    scores = json.loads((c.out / "scores.json").read_text())
    assert [s["name"] for s in scores["samples"]] == ["dent_000"]
    assert scores["skipped"] == [str(c.root / "bad" / "b_xyz.tiff")]


@contextlib.contextmanager
def _count_batches(seen: list[int]) -> Iterator[None]:
    """Record the size of every forward batch the detector runs."""
    # Detector.predict smooths each forward batch through calibration.finish_maps.
    import threedsr.calibration as calibration

    real = calibration.smooth_maps

    def smooth(raw: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(int(raw.shape[0]))
        return real(raw, *args, **kwargs)

    calibration.smooth_maps = smooth
    try:
        yield
    finally:
        calibration.smooth_maps = real


_BATCHES: list[int] = []


def _check_batches(c: Ctx, res: Any) -> None:
    # 5 test scans (1 good + 4 defect types) at --batch-size 3: forward batches of 3 and 2
    assert _BATCHES == [3, 2], _BATCHES
    _BATCHES.clear()


PROC = Path("/proc/threedsr-cli-test/out")  # not creatable, not even by root

CASES = [
    # ------------------------------------------------------------------ train
    Case("train-overwrite-keeps-user-files", lambda c: _train(c, "--overwrite"), 0, None,
         setup=lambda c: _user_files(c.run),
         changes=("run/run.json", "run/detector.pt", "run/train_state.pt",
                  "run/train_history.json", "run/.overwritten"),
         check=_check_train_kept_user_files),
    Case("train-overwrite-bad-data-keeps-old-run", lambda c: _train(c, "--overwrite"), 2,
         lambda c: str(c.xyz), setup=lambda c: _truncate(c.xyz),
         extra_fragments=("truncated TIFF",)),
    Case("train-failed-run-leaves-nothing", lambda c: _train(c, out=c.out), 2,
         lambda c: str(c.xyz), setup=lambda c: _truncate(c.xyz)),
    Case("train-retry-after-failed-run", lambda c: _train(c, out=c.out), 0, None,
         setup=lambda c: (c.out.mkdir(), (c.out / "run.json").write_text(json.dumps(
             {"kind": "train", "settings": {"seed": 7}, "finished": False}))),
         changes=("out",)),
    Case("train-cache-dir-inside-data", lambda c: _train(c, "--cache-dir", c.data / "cache",
         out=c.out), 2, lambda c: str(c.data / "cache"), extra_fragments=("inside the dataset",)),
    Case("train-batch-too-large", lambda c: [*_train(c, out=c.out)[:-1], "--batch-size",
         10**9, "-q"], 2, "--batch-size 1000000000", extra_fragments=("GiB",)),
    Case("train-data-symlink-loop", lambda c: _train(c, out=c.out, data=c.root / "loop"), 2,
         lambda c: str(c.root / "loop"), setup=lambda c: _symlink_loop(c.root / "loop"),
         extra_fragments=("symbolic-link loop",)),
    Case("train-data-is-a-file", lambda c: _train(c, out=c.out, data=c.xyz), 2,
         lambda c: str(c.xyz), extra_fragments=("not a folder",)),
    Case("train-out-is-a-file", lambda c: _train(c, out=c.xyz), 2, lambda c: str(c.xyz),
         extra_fragments=("not a folder",)),
    Case("train-unrelated-folder", lambda c: _train(c, out=c.out), 2, lambda c: str(c.out),
         setup=lambda c: _user_files(c.out), extra_fragments=("not empty",)),
    Case("train-unrelated-folder-overwrite", lambda c: _train(c, "--overwrite", out=c.out), 2,
         lambda c: str(c.out), setup=lambda c: _user_files(c.out)),
    Case("train-different-run-refused", lambda c: _same_run(c, "--seed", 5), 2,
         lambda c: str(c.run), extra_fragments=("different run", "seed 0 -> 5")),
    Case("train-finished-run-refused", lambda c: _same_run(c), 2, lambda c: str(c.run),
         extra_fragments=("finished run", "--resume")),
    Case("train-resume-and-overwrite", lambda c: _train(c, "--resume", "--overwrite"), 2,
         "exclude each other"),
    Case("train-text-as-dada", lambda c: _train(c, "--dada", c.root / "t.pt", out=c.out), 2,
         lambda c: str(c.root / "t.pt"), setup=lambda c: (c.root / "t.pt").write_text("hello"),
         extra_fragments=("not a PyTorch checkpoint",)),
    Case("train-truncated-dada", lambda c: _train(c, "--dada", c.root / "cut.pt", out=c.out), 2,
         lambda c: str(c.root / "cut.pt"),
         setup=lambda c: (c.root / "cut.pt").write_bytes((c.run / "detector.pt").read_bytes()[:999]),
         extra_fragments=("truncated",)),
    Case("train-corrupt-png", lambda c: _train(c, out=c.out), 2,
         lambda c: str(c.xyz.parent.parent / "rgb" / "000.png"),
         setup=lambda c: _truncate(c.xyz.parent.parent / "rgb" / "000.png", 60)),
    Case("train-nan-cloud", lambda c: _train(c, out=c.out), 2, lambda c: str(c.xyz),
         setup=lambda c: tifffile.imwrite(c.xyz, np.full((64, 64, 3), np.nan, np.float32),
                                          photometric="rgb"),
         extra_fragments=("invalid",)),
    Case("train-dada-batch-too-large", lambda c: ["train-dada", "--out", c.out, "--batch-size",
         10**9, "--device", "cpu"], 2, "--batch-size 1000000000"),
    Case("train-dada-rgb-dir-is-file", lambda c: ["train-dada", "--out", c.out, "--rgb-dir",
         c.xyz], 2, lambda c: str(c.xyz), extra_fragments=("is a file",)),
    Case("demo-different-profile-short-line", lambda c: ["demo", "--fast", "--out", c.out,
         "--device", "cpu"], 2, lambda c: str(c.out), setup=_demo_marker,
         extra_fragments=("different run", "profile.")),
    Case("demo-flag-takes-no-value", lambda c: ["demo", "--fast", "true", "--out", c.out], 2,
         "(true)", one_line=False),
    # ------------------------------------------------------------------ eval
    Case("eval-out-is-a-file", lambda c: _eval(c, "--out", c.xyz), 2, lambda c: str(c.xyz),
         extra_fragments=("not a folder",)),
    Case("eval-out-under-a-file", lambda c: _eval(c, "--out", c.xyz / "sub"), 2,
         lambda c: str(c.xyz / "sub"), extra_fragments=("is a file",)),
    Case("eval-out-unwritable", lambda c: _eval(c, "--out", PROC), 2, str(PROC)),
    Case("eval-other-class-metrics", lambda c: _eval(c, "--out", c.out), 2,
         lambda c: str(c.out / "metrics.json"), setup=lambda c: _metrics(c, {"bagel": {}}),
         extra_fragments=("bagel", "--overwrite")),
    Case("eval-other-detector-metrics", lambda c: _eval(c, "--out", c.out), 2,
         lambda c: str(c.out / "metrics.json"),
         setup=lambda c: _metrics(c, {CATEGORY: {"detector": "/other/detector.pt"}}),
         extra_fragments=("another detector",)),
    Case("eval-corrupt-metrics", lambda c: _eval(c, "--out", c.out), 2,
         lambda c: str(c.out / "metrics.json"),
         setup=lambda c: (c.out.mkdir(), (c.out / "metrics.json").write_text("{oops"),
                          _record(c.out, "metrics.json")),
         extra_fragments=("cannot read",)),
    Case("eval-overwrite-other-metrics", lambda c: _eval(c, "--out", c.out, "--overwrite"), 0,
         None, setup=lambda c: _metrics(c, {"bagel": {}}), changes=("out",),
         check=_check_metrics_new),
    Case("eval-missing-mask", lambda c: _eval(c, "--out", c.out), 2,
         lambda c: str(c.test_dent / "gt" / "000.png"), setup=_remove_mask,
         extra_fragments=("--allow-missing-masks",)),
    Case("eval-missing-mask-allowed", lambda c: _eval(c, "--out", c.out,
         "--allow-missing-masks"), 0, None, setup=_remove_mask, changes=("out",),
         check=lambda c, r: _check_warned(str(c.test_dent / "gt" / "000.png"))(c, r)),
    Case("eval-unfinished-run-warns", lambda c: _eval(c, "--out", c.out), 0, None,
         setup=_unfinished, changes=("out",), check=_check_warned("unfinished")),
    Case("eval-cache-dir-inside-data", lambda c: _eval(c, "--cache-dir", c.data / "c"), 2,
         lambda c: str(c.data / "c"), extra_fragments=("inside the dataset",)),
    Case("eval-truncated-detector", lambda c: _eval(c), 2, lambda c: str(c.run / "detector.pt"),
         setup=lambda c: _truncate(c.run / "detector.pt", 5000), extra_fragments=("truncated",)),
    Case("eval-text-detector", lambda c: _eval(c), 2, lambda c: str(c.run / "detector.pt"),
         setup=lambda c: (c.run / "detector.pt").write_text("hello"),
         extra_fragments=("not a PyTorch checkpoint",)),
    Case("eval-run-without-detector", lambda c: _eval(c), 2, lambda c: str(c.run),
         setup=lambda c: (c.run / "detector.pt").unlink(), extra_fragments=("no detector.pt",)),
    Case("eval-data-symlink-loop", lambda c: ["eval", "--run", c.run, "--data", c.root / "loop"],
         2, lambda c: str(c.root / "loop"), setup=lambda c: _symlink_loop(c.root / "loop"),
         extra_fragments=("symbolic-link loop",)),
    # ------------------------------------------------------------------ predict
    Case("predict-into-earlier-prediction", lambda c: _predict(c, "--out", c.out), 2,
         lambda c: str(c.out), setup=_old_prediction,
         extra_fragments=("already holds predictions", "--overwrite")),
    Case("predict-overwrite-removes-stale", lambda c: _predict(c, "--out", c.out, "--overwrite"),
         0, None, setup=_old_prediction, changes=("out",), check=_check_prediction_replaced),
    Case("predict-into-unrelated-folder", lambda c: _predict(c, "--out", c.out, "--overwrite"),
         2, lambda c: str(c.out), setup=lambda c: _user_files(c.out),
         extra_fragments=("holds no threedsr-cli predictions",)),
    Case("predict-into-prediction-with-user-file",
         lambda c: _predict(c, "--out", c.out, "--overwrite"), 2, lambda c: str(c.out),
         setup=lambda c: (_old_prediction(c), (c.out / "notes.txt").write_text("mine")),
         extra_fragments=("files predict did not write",)),
    Case("predict-out-is-a-file", lambda c: _predict(c, "--out", c.xyz), 2, lambda c: str(c.xyz),
         extra_fragments=("not a folder",)),
    Case("predict-out-unwritable", lambda c: _predict(c, "--out", PROC), 2, str(PROC)),
    Case("predict-rgb-is-a-folder", lambda c: ["predict", "--run", c.run, c.xyz,
         c.root / "rgb.png", "--out", c.out], 2, lambda c: str(c.root / "rgb.png"),
         setup=lambda c: (c.root / "rgb.png").mkdir(), extra_fragments=("is a folder",)),
    Case("predict-truncated-tiff", lambda c: _predict(c, "--out", c.out), 2,
         lambda c: str(c.test_dent / "xyz" / "000.tiff"),
         setup=lambda c: _truncate(c.test_dent / "xyz" / "000.tiff", 8),
         extra_fragments=("truncated TIFF",)),
    Case("predict-input-symlink-loop", lambda c: ["predict", "--run", c.run, c.root / "loop.tiff",
         c.root / "x.png"], 2, lambda c: str(c.root / "loop.tiff"),
         setup=lambda c: _symlink_loop(c.root / "loop.tiff"), extra_fragments=("symbolic link",)),
    Case("predict-text-detector", lambda c: _predict(c, "--out", c.out), 2,
         lambda c: str(c.run / "detector.pt"),
         setup=lambda c: (c.run / "detector.pt").write_text("hello")),
    # ================================================================== issue 24
    # 1. export --out: an existing file only with --overwrite, only an earlier export, never the
    #    run's own files
    Case("export-out-user-file", lambda c: _export(c, out=c.root / "notes.txt"), 2,
         lambda c: str(c.root / "notes.txt"), setup=lambda c: (c.root / "notes.txt").write_text("mine"),
         extra_fragments=("exists", "--overwrite")),
    Case("export-out-user-file-overwrite", lambda c: _export(c, "--overwrite", out=c.root / "notes.txt"),
         2, lambda c: str(c.root / "notes.txt"),
         setup=lambda c: (c.root / "notes.txt").write_text("mine"),
         extra_fragments=("not an export written by threedsr-cli",)),
    Case("export-out-run-detector", lambda c: _export(c, "--overwrite", out=c.run / "detector.pt"),
         2, lambda c: str(c.run / "detector.pt"), extra_fragments=("belongs to the run",)),
    Case("export-out-run-marker", lambda c: _export(c, out=c.run / "run.json"), 2,
         lambda c: str(c.run / "run.json"), extra_fragments=("belongs to the run",)),
    Case("export-sidecar-onto-run-file", lambda c: _export(c, "--overwrite",
         out=c.run / "train_history"), 2, lambda c: str(c.run / "train_history.json"),
         extra_fragments=("belongs to the run",)),
    Case("export-again-without-overwrite", lambda c: _export(c), 2, lambda c: str(c.out / "d.pt"),
         setup=_exported, extra_fragments=("--overwrite",)),
    Case("export-overwrite-earlier-export", lambda c: _export(c, "--overwrite", "--threshold",
         "0.5"), 0, None, setup=_exported, changes=("out/d.pt", "out/d.pt.json"),
         check=_check_export_replaced),
    Case("export-overwrite-changed-export", lambda c: _export(c, "--overwrite"), 2,
         lambda c: str(c.out / "d.pt"),
         setup=lambda c: (_exported(c), (c.out / "d.pt").write_bytes(b"edited")),
         extra_fragments=("not an export written by threedsr-cli",)),
    Case("export-overwrite-edited-sidecar", lambda c: _export(c, "--overwrite"), 2,
         lambda c: str(c.out / "d.pt.json"), setup=_exported_then_threshold_edited,
         extra_fragments=("edited since it was exported", "never replaces")),
    # 2. --overwrite touches only files the tool wrote (recorded, content unchanged)
    Case("eval-overwrite-hand-written-metrics", lambda c: _eval(c, "--out", c.out, "--overwrite"),
         2, lambda c: str(c.out / "metrics.json"),
         setup=lambda c: _metrics(c, {"bagel": {}}, record=False),
         extra_fragments=("not written by threedsr-cli",)),
    Case("eval-edited-metrics", lambda c: _eval(c, "--out", c.out), 2,
         lambda c: str(c.out / "metrics.md"),
         setup=lambda c: (_eval_into(c, c.out), (c.out / "metrics.md").write_text("my notes\n")),
         extra_fragments=("changed since",)),
    Case("eval-again-replaces-own-metrics", lambda c: _eval(c, "--out", c.out), 0, None,
         setup=lambda c: _eval_into(c, c.out), changes=("out",), check=_check_metrics_new),
    Case("train-overwrite-keeps-hand-written-metrics", lambda c: _train(c, "--overwrite"), 0, None,
         setup=lambda c: _metrics(c, {CATEGORY: {"mine": 1}}, folder=c.run, record=False),
         changes=("run/run.json", "run/detector.pt", "run/train_state.pt",
                  "run/train_history.json", "run/.overwritten"),
         check=_check_hand_metrics_kept),
    Case("train-overwrite-replaces-recorded-metrics", lambda c: _train(c, "--overwrite"), 0, None,
         setup=lambda c: _eval_into(c),
         changes=("run/run.json", "run/detector.pt", "run/train_state.pt",
                  "run/train_history.json", "run/.overwritten", "run/metrics.json",
                  "run/metrics.md", "run/.threedsr-written.json"),
         check=_check_recorded_metrics_replaced),
    # 3. one writer per folder (an OS lock on the folder; see test_faults for two processes)
    Case("train-into-locked-run", lambda c: _train(c, "--overwrite"), 2, lambda c: str(c.run),
         around=_hold_lock(lambda c: c.run),
         extra_fragments=("another threedsr-cli command", "is writing this folder")),
    Case("eval-into-locked-folder", lambda c: _eval(c), 2, lambda c: str(c.run),
         around=_hold_lock(lambda c: c.run), extra_fragments=("is writing this folder",)),
    Case("predict-into-locked-folder", lambda c: _predict(c, "--out", c.out), 2,
         lambda c: str(c.out), setup=lambda c: c.out.mkdir(),
         around=_hold_lock(lambda c: c.out), extra_fragments=("is writing this folder",)),
    Case("export-into-locked-folder", lambda c: _export(c), 2, lambda c: str(c.out),
         setup=lambda c: c.out.mkdir(), around=_hold_lock(lambda c: c.out),
         extra_fragments=("is writing this folder",)),
    # 4. predict: one colour scale per detector, the same picture whatever else is in the call
    Case("predict-same-picture-alone-or-among-others", lambda c: ["predict", "--run", c.run,
         c.data / CATEGORY / "test" / "good", "--out", c.out, "--device", "cpu", "-q"], 0, None,
         setup=_predict_both, changes=("out",), check=_check_same_picture),
    # 5. export only at the trained size; train refuses sizes export cannot take
    Case("export-size-not-trained", lambda c: _export(c, "--size", 128, out=c.root / "d.pt"), 2, "--size 128",
         extra_fragments=("not the detector's 64",)),
    Case("train-size-32", lambda c: [*_train(c, out=c.out), "--size", 32], 2,
         "--size: must be a multiple of 32 and at least 64 (got 32)"),
    # 8. every export's sidecar carries the calibrated threshold
    Case("export-sidecar-has-threshold", lambda c: _export(c), 0, None,
         setup=lambda c: c.out.mkdir(), changes=("out",), check=_check_export_threshold),
    # 6. file names that are not UTF-8
    Case("predict-non-utf8-file-name", lambda c: ["predict", "--run", c.run, c.root / "in",
         "--out", c.out, "--device", "cpu", "-q"], 0, None, setup=_non_utf8_inputs,
         changes=("out",), check=_check_non_utf8_prediction),
    Case("eval-non-utf8-defect-type", lambda c: _eval(c, "--out", c.out), 0, None,
         setup=_non_utf8_defect_type, changes=("out",), check=_check_non_utf8_metrics),
    # 7. run folders move: data recorded absolute, detectors named relative + by content
    Case("predict-auto-threshold-moved-run-other-cwd", lambda c: ["predict", "--run",
         c.root / "moved", c.test_dent, "--threshold", "auto", "--out", c.out, "--device",
         "cpu", "-q"], 0, None, setup=_relative_data_run, changes=("out", "elsewhere"),
         around=lambda c: _in_folder(c.root / "elsewhere"), check=_check_auto_threshold),
    Case("eval-copied-run-folder-other-cwd", lambda c: ["eval", "--run", c.root / "copy",
         "--data", c.data, "--device", "cpu", "-q"], 0, None, setup=_copied_run,
         changes=("copy/metrics.json", "copy/metrics.md", "copy/.threedsr-written.json",
                  "elsewhere"),
         around=lambda c: _in_folder(c.root / "elsewhere"), check=_check_copied_eval),
    # 9. outputs never go inside the dataset
    Case("eval-out-inside-data", lambda c: _eval(c, "--out", c.data / CATEGORY / "m"), 2,
         lambda c: str(c.data / CATEGORY / "m"), extra_fragments=("--out lies inside the dataset",)),
    Case("predict-out-inside-data", lambda c: _predict(c, "--out", c.test_dent / "p"), 2,
         lambda c: str(c.test_dent / "p"), extra_fragments=("--out lies inside the dataset",)),
    Case("train-out-inside-data", lambda c: _train(c, out=c.data / "r"), 2,
         lambda c: str(c.data / "r"), extra_fragments=("--out lies inside the dataset",)),
    # messages: one line naming the option, before any work
    Case("predict-onnx-without-backend", lambda c: ["predict", "--run", c.root / "m.onnx",
         c.test_dent], 2, lambda c: str(c.root / "m.onnx"),
         setup=lambda c: (c.root / "m.onnx").write_bytes(b"onnx"),
         extra_fragments=("pass --backend onnxruntime",)),
    Case("eval-onnx-as-run", lambda c: ["eval", "--run", c.root / "m.onnx", "--data", c.data], 2,
         lambda c: str(c.root / "m.onnx"), setup=lambda c: (c.root / "m.onnx").write_bytes(b"x"),
         extra_fragments=("ONNX export", "run folder")),
    Case("predict-checkpoint-with-onnx-backend", lambda c: _predict(c, "--run",
         c.run / "detector.pt", "--backend", "onnxruntime"), 2,
         lambda c: str(c.run / "detector.pt"),
         extra_fragments=("PyTorch checkpoint", "drop --backend")),
    Case("train-seed-negative", lambda c: _train(c, "--seed", -1, out=c.out), 2,
         "--seed: must be a non-negative integer (got -1)"),
    Case("eval-seed-negative", lambda c: _eval(c, "--seed", -1, "--out", c.out), 2,
         "--seed: must be a non-negative integer (got -1)"),
    Case("train-size-33", lambda c: [*_train(c, out=c.out), "--size", 33], 2,
         "--size: must be a multiple of 32 and at least 64 (got 33)",
         check=lambda c, r: "DetectorConfig" not in r.stderr),
    Case("train-dada-size-not-multiple", lambda c: ["train-dada", "--out", c.out, "--size", 12],
         2, "--size: must be a multiple of 8 and at least 8 (got 12)"),
    Case("predict-batch-size-zero", lambda c: _predict(c, "--batch-size", 0), 2,
         "--batch-size: must be an integer of at least 1 (got 0)"),
    Case("eval-batch-size-zero", lambda c: _eval(c, "--batch-size", 0), 2,
         "--batch-size: must be an integer of at least 1 (got 0)"),
    Case("train-iterations-zero", lambda c: _train(c, "--iterations", 0, out=c.out), 2,
         "--iterations: must be an integer of at least 1 (got 0)"),
    Case("export-threshold-not-a-number", lambda c: _export(c, "--threshold", "high"), 2,
         "--threshold: expected a number or 'auto'"),
    Case("predict-threshold-not-finite", lambda c: _predict(c, "--threshold", "nan"), 2,
         "--threshold: must be finite"),
    Case("eval-batch-size-controls-the-forward-batch", lambda c: _eval(c, "--out", c.out,
         "--batch-size", 3), 0, None, changes=("out",),
         around=lambda c: _count_batches(_BATCHES), check=_check_batches),
    # predict: an unreadable input among several is skipped, the others written, exit 2
    Case("predict-skips-unreadable-input", lambda c: ["predict", "--run", c.run,
         c.root / "bad" / "b_xyz.tiff", c.root / "bad" / "b_rgb.png", c.test_dent, "--out", c.out,
         "--device", "cpu", "-q"], 2, lambda c: str(c.root / "bad" / "b_rgb.png"),
         setup=_bad_pair, changes=("out",), one_line=False, check=_check_skipped),
    Case("predict-every-input-unreadable", lambda c: ["predict", "--run", c.run,
         c.root / "bad" / "b_xyz.tiff", c.root / "bad" / "b_rgb.png", c.root / "bad" / "c_xyz.tiff",
         c.root / "bad" / "c_rgb.png", "--out", c.out, "--device", "cpu", "-q"], 2,
         "none of the 2 inputs could be read", setup=lambda c: (_bad_pair(c), _bad_pair(c, "c")),
         one_line=False),
    # help texts
    Case("help-predict-shows-onnx-extra", lambda c: ["predict", "--help"], 0, None,
         around=lambda c: _wide_terminal(), check=_help_shows("threedsr[onnx]", "exit status")),
    Case("help-export-shows-onnx-extra", lambda c: ["export", "--help"], 0, None,
         around=lambda c: _wide_terminal(), check=_help_shows("threedsr[onnx]", "--overwrite")),
    Case("help-eval-has-batch-size", lambda c: ["eval", "--help"], 0, None,
         around=lambda c: _wide_terminal(), check=_help_shows("--batch-size")),
    Case("help-threshold-one-type", lambda c: ["export", "--help"], 0, None,
         around=lambda c: _wide_terminal(), check=_check_threshold_metavar),
    Case("help-one-name-for-the-size", lambda c: ["train-dada", "--help"], 0, None,
         around=lambda c: _wide_terminal(), check=_help_shows("--size", absent=("--image-size",))),
]  # fmt: skip


@pytest.fixture()
def ctx(tmp_path: Path, tiny_data: Path, run_rgbd: Path) -> Ctx:
    shutil.copytree(tiny_data, tmp_path / "data", symlinks=True)
    shutil.copytree(run_rgbd, tmp_path / "run", symlinks=True)
    return Ctx(tmp_path, tmp_path / "data", tmp_path / "run", tmp_path / "out")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, ctx: Ctx, cli: Any) -> None:
    if case.setup is not None:
        case.setup(ctx)
    before = snapshot(ctx.root)
    with case.around(ctx) if case.around is not None else nullcontext():
        res = cli(*case.argv(ctx))
    after = snapshot(ctx.root)
    assert res.exit_code == case.code, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    if case.code != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        if case.one_line:
            assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
            assert len(lines[0]) < 400, lines[0]
        text = " ".join(lines)
        fragment = case.fragment(ctx) if callable(case.fragment) else case.fragment
        for f in (fragment, *case.extra_fragments):
            assert f is not None and f in text, (f, text)
    # nothing lost, nothing half-written: byte for byte the state before, but for what the case
    # names (an error case names nothing, unless it wrote a partial result on purpose)
    changed = _diff(before, after)
    allowed = {k for k in changed if any(k == p or k.startswith(p + "/") for p in case.changes)}
    assert changed == allowed, sorted(changed - allowed)
    if case.check is not None:
        case.check(ctx, res)


def test_suite_has_enough_cases() -> None:
    assert len(CASES) >= 90  # 46 before issue 24
    assert len({c.id for c in CASES}) == len(CASES)


def test_help_shows_no_bool_metavar(cli: Any) -> None:
    # Every flag says it takes no value, --help too (newer Typers give it "<bool>").
    for command in ("demo", "train", "eval", "predict", "export", "train-dada", "pack"):
        res = cli(command, "--help")
        assert res.exit_code == 0 and "<bool>" not in res.stdout, command
        assert any("--help" in line for line in res.stdout.splitlines()), command
    res = cli("--help")
    assert res.exit_code == 0 and "--help" in res.stdout and "<bool>" not in res.stdout


def test_write_error_names_the_file_not_the_temporary(tmp_path: Path) -> None:
    from threedsr_cli.atomic import atomic_write_json
    from threedsr_cli.errors import CLIError

    target = PROC / "metrics.json"
    with pytest.raises(CLIError) as info:
        atomic_write_json(target, {})
    assert str(info.value).startswith(f"{target}: cannot write") and ".metrics-" not in str(
        info.value
    )


def test_out_of_memory_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from threedsr_cli.errors import guard

    with pytest.raises(SystemExit) as info, guard():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 10 GB")
    assert info.value.code == 2
    assert "smaller --batch-size" in capsys.readouterr().err
