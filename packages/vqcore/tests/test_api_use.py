"""What a notebook user of vqcore meets: training leaves torch's global RNG as it was, wrong
dtypes and shapes are one-line errors naming the argument, and configs refuse unknown names
with VqcoreError (not a TypeError) and take a nested config's fields by their plain names."""

from __future__ import annotations

import torch
import vqcore
from vqcore import train_dada


def test_train_dada_leaves_the_callers_random_stream_alone(tmp_path, tiny_stage_one) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)  # what the caller's next draw is without training in between
    torch.manual_seed(1234)
    train_dada(tiny_stage_one("depth", tmp_path, iterations=2))
    assert torch.equal(torch.rand(3), expected)


def test_rng_scope_restores_the_cpu_generator() -> None:
    before = torch.random.get_rng_state()
    with vqcore.rng_scope("cpu"):
        torch.manual_seed(0)
        torch.rand(5)
    assert torch.equal(torch.random.get_rng_state(), before)
