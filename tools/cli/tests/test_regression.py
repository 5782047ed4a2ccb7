"""Issue 14 regression suite: bad input and reused folders, table-driven.

Each case states the command, the exit code, a fragment of the one stderr line (naming the file)
and the state of the data, run and output folders before and after, compared byte for byte:
an error case changes nothing at all; a success case changes only what it names. Each case works
on private copies of the session's tiny dataset and trained run (``conftest.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
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


def _metrics(c: Ctx, content: dict[str, Any]) -> None:
    c.out.mkdir(exist_ok=True)
    (c.out / "metrics.json").write_text(json.dumps(content))
    (c.out / "metrics.md").write_text("old table\n")


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
    assert sorted(p.name for p in c.out.iterdir()) == ["metrics.json", "metrics.md"]


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
         setup=lambda c: (c.out.mkdir(), (c.out / "metrics.json").write_text("{oops"))),
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
        # nothing lost, nothing half-written: byte for byte the state before
        assert _diff(before, after) == set(), sorted(_diff(before, after))
    else:
        changed = _diff(before, after)
        allowed = {k for k in changed if any(k == p or k.startswith(p + "/") for p in case.changes)}
        assert changed == allowed, sorted(changed - allowed)
        if case.check is not None:
            case.check(ctx, res)


def test_suite_has_enough_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_help_shows_no_bool_metavar(cli: Any) -> None:
    # Typer's own --help row keeps its "<bool>"; every flag of ours says it takes no value.
    for command in ("demo", "train", "eval", "predict", "export", "train-dada"):
        res = cli(command, "--help")
        rows = [line for line in res.stdout.splitlines() if "--help" not in line]
        assert res.exit_code == 0 and not any("<bool>" in line for line in rows), command


def test_write_error_names_the_file_not_the_temporary(tmp_path: Path) -> None:
    from threedsr_cli.errors import CLIError
    from threedsr_cli.runs import atomic_write_json

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
