"""``--overwrite`` and a command still writing into a folder of the run it replaces."""

from __future__ import annotations

import shutil

from threedsr_cli.locks import folder_lock

from .conftest import CATEGORY, fused_train_args


def _tree(root):
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")
    }


def test_train_overwrite_waits_for_a_predict_into_the_runs_predictions(
    bad_input, cli, tmp_path, run_rgbd, tiny_data, dada_rgbd
):
    # predict locks only its --out (default <run>/predictions), train only the run folder: the
    # overwrite moved the predictions folder away (and deleted it) while predict wrote into it,
    # so the prediction of the old detector landed beside the new one, or was lost.
    run = tmp_path / "run"
    shutil.copytree(run_rgbd, run)
    test = tiny_data / CATEGORY / "test" / "dent"
    assert cli("predict", "--run", run, test, "--device", "cpu", "-q").exit_code == 0
    before = _tree(run)
    with folder_lock(run / "predictions"):  # as a predict writing there holds it
        line = bad_input(
            cli(*fused_train_args(tiny_data, dada_rgbd, run, "--overwrite")),
            str(run / "predictions"),
            "is writing this folder",
        )
    assert line.startswith(f"error: {run / 'predictions'}: another threedsr-cli command"), line
    assert _tree(run) == before  # nothing moved
    res = cli(*fused_train_args(tiny_data, dada_rgbd, run, "--overwrite"))
    assert res.exit_code == 0, res.stderr  # the lock released, the overwrite goes ahead
    assert not (run / "predictions").exists() and not (run / ".overwritten").exists()
