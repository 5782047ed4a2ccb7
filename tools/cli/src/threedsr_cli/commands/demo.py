"""``threedsr-cli demo``: the whole method on a synthetic dataset, on the CPU, in minutes.

Stages: generate a ``depthsim.scenes`` dataset (MVTec 3D-AD layout) -> the shipped pretrained DADA
(rgbd) and RGB-only backbone (``--stage1`` trains them instead) -> stage 2 for an ``rgbd`` and an
``rgb`` detector -> evaluation -> report (metrics.json, report.md/html, ROC / PRO curves,
overlays; drawn by ``demo_report.py``). Every stage is skipped when its output is already
complete, so ``--resume`` continues an interrupted demo.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.atomic import atomic_write_json
from threedsr_cli.commands.demo_profile import (
    SETUPS,
    DemoProfile,
    demo_plan,
    detector_config,
    stage_one_config,
)
from threedsr_cli.commands.demo_report import (
    depth_only_verdict,
    gather_test_results,
    print_summary,
    report_text,
    write_figures,
)
from threedsr_cli.commands.train import run_training
from threedsr_cli.commands.train_dada import run_stage_one
from threedsr_cli.concurrent import TrainJob, train_concurrently
from threedsr_cli.errors import finished_run
from threedsr_cli.locks import run_lock
from threedsr_cli.runs import claim_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from threedsr import EvaluatedSamples

__all__ = ["demo_command"]


def _generate(ui: UI, profile: DemoProfile, root: Path, seed: int) -> dict[str, Any]:
    import json

    from depthsim import scenes

    meta = root / "scenes.json"
    if not meta.is_file():
        with ui.stage("generate dataset") as progress:
            scenes.generate_dataset(
                root,
                classes=[profile.category],
                size=profile.image_size,
                n_train=profile.n_train,
                n_validation=profile.n_validation,
                n_test_per_type=profile.n_test_per_type,
                seed=seed,
                progress=progress,
            )
    return json.loads(meta.read_text())


def _run_trainings(ui: UI, jobs: list[TrainJob], device: str) -> None:
    """Side by side in worker processes on the CPU (see :mod:`threedsr_cli.concurrent`); one
    after the other on a GPU, where each already has the device to itself."""
    if device == "cpu" and len(jobs) > 1:
        train_concurrently(ui, jobs)
        return
    for job in jobs:
        if job.kind == "stage1":
            run_stage_one(ui, job.config, job.description)
        else:
            run_training(ui, job.config, job.data, job.description)


def _finished(out: Path) -> bool:
    import threedsr

    try:
        return threedsr.detector_info(out / "detector.pt").finished
    except threedsr.ThreedsrError:  # none yet, or unreadable: train it
        return False


def demo_command(*, out: Path, **kwargs: Any) -> dict[str, Any]:
    """The demo into ``out``, holding the folder's write lock throughout (``locks.py``)."""
    with run_lock(out):
        return _demo(out=out, **kwargs)


def _demo(
    *,
    out: Path,
    fast: bool,
    resume: bool,
    overwrite: bool,
    device: str,
    seed: int,
    ui: UI,
    profile: DemoProfile | None = None,
    stage1: bool = False,
    method: str | None = None,
) -> dict[str, Any]:
    from threedsr_cli.commands.evaluate import metrics_summary
    from threedsr_cli.libs import resolve_device, seed_everything

    t_start = time.perf_counter()
    dev = str(resolve_device(device))
    method, default_profile = demo_plan(method, dev, fast=fast)
    profile = profile or default_profile
    run = claim_run(
        out,
        "demo",
        {
            "fast": fast,
            "seed": seed,
            "stage1": stage1,
            "method": method,
            "profile": profile.to_dict(),
        },
        resume=resume,
        overwrite=overwrite,
    )
    checkpoints = [
        out / "detector-rgbd" / "detector.pt",
        out / "detector-rgb" / "detector.pt",
        out / "dada-rgbd" / "backbone.pt",
        out / "backbone-rgb" / "backbone.pt",
    ]
    with run.guard(checkpoints):
        seed_everything(seed)
        timing: dict[str, float] = {}

        def lap(name: str, t0: float) -> None:
            timing[name] = round(time.perf_counter() - t0, 2)

        import threedsr

        ui.info(
            f"threedsr demo -> {out} ({'fast' if fast else 'full'}, {dev}); method {method}: "
            f"{threedsr.METHOD_SUMMARY[method]}"
        )
        if fast:
            ui.info(
                "--fast is a smoke test: a few scans per defect type, so its AUROCs are noise; "
                "run the demo without --fast for figures"
            )
        t0 = time.perf_counter()
        data = out / "data"
        meta = _generate(ui, profile, data, seed)
        lap("generate dataset", t0)

        backbones: dict[str, Path | None] = {setup: None for setup in SETUPS}  # None = pretrained
        jobs: list[TrainJob] = []
        if stage1:
            for setup in SETUPS:
                folder = out / ("dada-rgbd" if setup == "rgbd" else f"backbone-{setup}")
                config = stage_one_config(profile, setup, folder, dev, seed)
                backbones[setup] = config.checkpoint_path
                name = "DADA (rgbd)" if setup == "rgbd" else f"{setup}-only backbone"
                jobs.append(TrainJob("stage1", f"stage 1: {name}", config, config.checkpoint_path))
            t0 = time.perf_counter()
            _run_trainings(ui, jobs, dev)
            lap("stage 1 (rgbd + rgb)", t0)
        else:
            ui.info(
                "stage 1: the pretrained backbones that ship with threedsr (--stage1 trains them)"
            )

        import threedsr

        from threedsr_cli.commands.train import prepare_train_data

        t0 = time.perf_counter()
        train_data = None
        jobs = []
        for setup in SETUPS:
            folder = out / f"detector-{setup}"
            config = detector_config(
                profile, setup, data, backbones[setup], folder, dev, seed, method
            )
            if _finished(folder):
                continue
            if train_data is None:
                # Both setups share one preprocessing ([D, R, G, B]), whichever trains first.
                train_data = prepare_train_data(ui, dataclasses.replace(config, setup="rgbd"))
            data_for_setup = train_data.for_setup(setup)
            jobs.append(
                TrainJob(
                    "stage2",
                    f"{method}: {setup} detector",
                    config,
                    folder / "detector.pt",
                    data_for_setup,
                )
            )
        _run_trainings(ui, jobs, dev)
        lap(f"{method} detectors (rgbd + rgb)", t0)

        t0 = time.perf_counter()
        detectors = {s: threedsr.Detector.load(out / f"detector-{s}", device=dev) for s in SETUPS}
        metrics: dict[str, dict[str, Any]] = {}
        samples: dict[str, EvaluatedSamples] = {}
        for setup, det in detectors.items():
            with ui.stage(f"evaluate {setup}") as progress:
                res = threedsr.evaluate(
                    det, data, profile.category, progress=progress, keep_samples=True
                )
            metrics[setup] = metrics_summary(res)
            samples[setup] = res[profile.category]["samples"]
        test = gather_test_results(ui, samples, detectors[SETUPS[0]].preprocess)
        lap("evaluate", t0)

        t0 = time.perf_counter()
        modality = dict(meta.get("defect_types", {}))
        from threedsr_cli.map_scale import display_scale

        scales = {s: display_scale(det) for s, det in detectors.items()}
        overlays = write_figures(ui, out, profile, meta, metrics, test, scales)
        lap("report", t0)
        total = time.perf_counter() - t_start
        timing["total"] = round(total, 2)
        summary = {
            **metrics,
            "category": profile.category,
            "defect_modality": modality,
            "depth_only_verdict": depth_only_verdict(metrics, modality, profile.category),
            "profile": profile.to_dict(),
            "seed": seed,
            "device": dev,
            "timing_s": timing,
        }
        atomic_write_json(out / "metrics.json", summary)
        from threedsr_cli import report as rp

        md, page = report_text(profile, meta, metrics, overlays, timing, out)
        rp.write_text_files(out, md, page)
    run.finish(total_s=total)
    with finished_run(out):
        print_summary(ui, metrics, modality, profile.category, out, total)
    return summary
