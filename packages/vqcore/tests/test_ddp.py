"""DDP under torchrun (gloo, 2 CPU processes) equals one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from vqcore import StageOneConfig, read_checkpoint, train_dada

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    from vqcore import StageOneConfig, train_dada

    torch.set_num_threads(1)
    cfg = StageOneConfig.from_dict(json.loads(sys.argv[1]))
    train_dada(cfg)
    """
)


def _config(tiny_stage_one, out_dir) -> StageOneConfig:
    # Dead-code restart on (the cpu preset's default) so the global-row restart is exercised.
    return tiny_stage_one(
        "rgbd",
        out_dir,
        iterations=4,
        batch_size=4,
        lr_milestones=(3,),
        checkpoint_every=2,
        log_every=2,
    )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_torchrun_gloo_two_ranks_equals_single_process(tmp_path, tiny_stage_one):
    ddp_cfg = _config(tiny_stage_one, tmp_path / "ddp")
    assert ddp_cfg.backbone is not None and ddp_cfg.backbone.restart_dead_codes
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        json.dumps(ddp_cfg.to_dict()),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    single = train_dada(_config(tiny_stage_one, tmp_path / "single"))
    ddp_state = read_checkpoint(tmp_path / "ddp")
    assert ddp_state["step"] == 4
    single_state = single.model.state_dict()
    assert set(ddp_state["model"]) == set(single_state)
    for key, value in single_state.items():
        torch.testing.assert_close(ddp_state["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # The codebooks really moved (the comparison is not between two untouched inits).
    torch.manual_seed(0)
    assert not torch.allclose(single_state["vq_bot.ema_cluster_size"], torch.zeros(1))
