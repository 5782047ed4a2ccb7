"""The command each shipped backbone's manifest records is one that this CLI runs."""

from __future__ import annotations

import shlex

import pytest
import typer
import vqcore
from threedsr_cli.app import app


@pytest.mark.parametrize("setup", ["rgbd", "depth", "rgb"])
def test_manifest_command_parses_under_the_current_options(setup: str) -> None:
    # The manifests kept --image-size after the option became --size: the recorded "exact
    # command" that makes each backbone stopped at "No such option" when copied.
    words = shlex.split(vqcore.pretrained_manifest()["backbones"][setup]["command"])
    assert words[:2] == ["threedsr-cli", "train-dada"]
    group = typer.main.get_command(app)
    command = group.get_command(group.make_context("threedsr-cli", ["train-dada"]), "train-dada")
    ctx = command.make_context("train-dada", words[2:])
    assert ctx.params["setup"] == setup and ctx.params["image_size"] == 64
