from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from threedsr import read_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from threedsr_testutil import synthetic_class, tiny_backbone, tiny_config

    from threedsr import train_detector

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    cfg = tiny_config("depth", out=out, iterations=3, batch_size=4)
    train_detector(cfg, backbone=tiny_backbone("depth"), data=synthetic_class("depth"))


def test_ddp_two_gloo_processes_keep_replicas_in_sync(tmp_path) -> None:
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ck = read_checkpoint(tmp_path / "detector.pt")
    assert ck["step"] == 3 and ck["finished"]
