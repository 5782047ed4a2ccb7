from __future__ import annotations

import socket

import torch.multiprocessing as mp
from threedsr import read_checkpoint
from threedsr_testutil import ddp_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_two_gloo_processes_train_and_rank0_writes(tmp_path) -> None:
    mp.start_processes(
        ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    ck = read_checkpoint(tmp_path / "detector.pt")
    assert ck["step"] == 3 and ck["finished"] and ck["method"] == "3dsr"
    # Rank 0 calibrated the trained heads and wrote the finished detector.
    assert ck["heads_calibration"][1] > 0 and ck["display"]["source"] == "training"
