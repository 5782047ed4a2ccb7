"""``threedsr-cli demo``: the whole method on a synthetic dataset, on the CPU, in minutes.

Stages: generate a ``depthsim.scenes`` dataset (MVTec 3D-AD layout) -> the shipped pretrained DADA
(rgbd) and RGB-only backbone (``--stage1`` trains them instead) -> stage 2 for an ``rgbd`` and an ``rgb`` detector -> evaluation ->
report (metrics.json, report.md/html, ROC / PRO curves, overlays). Every stage is skipped when its
output is already complete, so ``--resume`` continues an interrupted demo.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threedsr_cli.commands.train import run_training
from threedsr_cli.commands.train_dada import run_stage_one
from threedsr_cli.concurrent import TrainJob, train_concurrently
from threedsr_cli.locks import run_lock
from threedsr_cli.runs import atomic_write_json, claim_run
from threedsr_cli.ui import UI

if TYPE_CHECKING:
    from collections.abc import Callable

    from threedsr import DetectorConfig, EvaluatedSamples
    from vqcore import StageOneConfig

    from threedsr_cli.report import MapScale, OverlayRow

__all__ = ["DemoProfile", "demo_command", "demo_plan"]

# The setups the demo compares (a subset of vqcore.SETUPS, which the CLI does not import at
# start-up: importing vqcore loads torch).
SETUPS = ("rgbd", "rgb")


@dataclass(frozen=True)
class DemoProfile:
    """Sizes and iteration counts of the demo (the CPU presets, shortened where it pays)."""

    category: str = "puck"
    image_size: int = 128
    n_train: int = 40
    n_validation: int = 8
    n_test_per_type: int = 20
    dada_iterations: int = 600
    dada_image_size: int = 64
    dada_batch: int = 8
    #: stage-1 loss weights of the rgbd DADA (None, None = the reference's mean over 4 channels)
    dada_lambda_depth: float | None = None
    dada_lambda_rgb: float | None = None
    backbone: tuple[tuple[str, Any], ...] = ()
    detector_iterations: int = 400
    detector_size: int = 128
    detector_batch: int = 8
    detector_model: tuple[tuple[str, Any], ...] = ()

    #: The 3DSR schedule of ``--method 3dsr`` / ``fused`` (``gpu`` on CUDA).
    detector_preset: str = "cpu"

    @classmethod
    def gpu(cls) -> DemoProfile:
        """The demo on a GPU: the ``gpu`` preset's network (paper widths, bf16) at 256 px on 60
        good scans, 2,500 iterations per detector (on one H200 about 15 it/s before issue 25's
        device-side batches: 2,800 iterations reached image AUROC 0.918 on such a class)."""
        return cls(
            image_size=256,
            n_train=60,
            n_validation=10,
            detector_iterations=2_500,
            detector_size=256,
            detector_batch=16,
            detector_preset="gpu",
        )

    @classmethod
    def fast(cls) -> DemoProfile:
        """A sub-minute smoke version: tiny images, models and iteration counts."""
        return cls(
            image_size=64,
            n_train=6,
            n_validation=2,
            n_test_per_type=2,
            dada_iterations=8,
            dada_image_size=32,
            dada_batch=4,
            backbone=(
                ("hidden", 16),
                ("res_hidden", 8),
                ("num_embeddings", 32),
                ("embedding_dim", 8),
            ),
            detector_iterations=8,
            detector_size=64,
            detector_batch=4,
            detector_model=(
                ("srm_base", 8),
                ("objdec_width", 8),
                ("objdec_bottleneck", 8),
                ("objdec_hidden", 8),
                ("objdec_res_hidden", 8),
                ("unet_base", 4),
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backbone"] = dict(self.backbone)
        d["detector_model"] = dict(self.detector_model)
        return d


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


def _stage_one_config(
    profile: DemoProfile, setup: str, out: Path, device: str, seed: int
) -> StageOneConfig:
    import vqcore

    backbone = vqcore.BackboneConfig.cpu(setup, **dict(profile.backbone))
    weights: dict[str, float | None] = {}
    if setup == "rgbd" and profile.dada_lambda_depth is not None:
        weights = {"lambda_depth": profile.dada_lambda_depth, "lambda_rgb": profile.dada_lambda_rgb}
    return vqcore.StageOneConfig.cpu(
        setup,
        backbone=backbone,
        out_dir=out,
        iterations=profile.dada_iterations,
        image_size=profile.dada_image_size,
        batch_size=profile.dada_batch,
        seed=seed,
        device=device,
        resume=True,
        checkpoint_every=max(1, profile.dada_iterations // 3),
        **weights,
    )


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


def _detector_config(
    profile: DemoProfile,
    setup: str,
    data: Path,
    backbone: Path | None,
    out: Path,
    device: str,
    seed: int,
    method: str = "memory",
) -> DetectorConfig:
    import threedsr

    common: dict[str, Any] = dict(
        setup=setup,
        data_root=str(data),
        category=profile.category,
        backbone=None if backbone is None else str(backbone),
        out_dir=str(out),
        image_size=profile.detector_size,
        device=device,
        seed=seed,
    )
    if method == "memory":  # nothing is trained: no schedule
        return threedsr.DetectorConfig.preset("memory", **common)
    return threedsr.DetectorConfig.preset(
        profile.detector_preset,
        method=method,
        iterations=profile.detector_iterations,
        batch_size=profile.detector_batch,
        checkpoint_every=max(1, profile.detector_iterations // 4),
        resume=True,
        **common,
        **dict(profile.detector_model),
    )


def _finished(out: Path) -> bool:
    import threedsr

    try:
        return threedsr.detector_info(out / "detector.pt").finished
    except threedsr.ThreedsrError:  # none yet, or unreadable: train it
        return False


def _overlay_samples(types: list[str]) -> list[tuple[str, int]]:
    """(defect type, test index) of the samples drawn as overlays: the first two of each type (the
    first good one is also every defective overlay's reference row)."""
    order = ["good", *sorted(t for t in set(types) if t != "good")]
    return [(t, i) for t in order for i in [j for j, tt in enumerate(types) if tt == t][:2]]


def _test_results(
    ui: UI, samples: dict[str, EvaluatedSamples], preprocess: dict[str, Any]
) -> dict[str, Any]:
    """The test split as ``threedsr.evaluate`` saw it (``samples``: setup -> EvaluatedSamples),
    plus the few samples drawn as overlays, preprocessed again for their RGB and depth."""
    import pcprep

    first = next(iter(samples.values()))
    picks = sorted({i for _, i in _overlay_samples(first.defect_types)})
    with ui.stage("preprocess overlay samples", len(picks)) as progress:
        prepared = pcprep.preprocess_refs(
            [first.refs[i] for i in picks], None, progress=progress, **preprocess
        )
    return {
        "prepared": dict(zip(picks, prepared, strict=True)),
        "labels": first.labels,
        "types": first.defect_types,
        "gts": first.gts,
        "maps": {s: r.maps for s, r in samples.items()},
        "scores": {s: r.scores for s, r in samples.items()},
    }


def _report(
    ui: UI,
    out: Path,
    profile: DemoProfile,
    meta: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    test: dict[str, Any],
    scales: dict[str, MapScale],
) -> list[tuple[str, Path]]:
    from threedsr_cli import report as rp

    cat = profile.category
    modality: dict[str, str] = dict(meta.get("defect_types", {}))
    files: dict[str, Path] = {}
    with ui.stage("write figures", 3 + len(set(test["types"]))) as progress:
        files["roc"] = rp.plot_roc(
            {s: (test["labels"], test["scores"][s]) for s in SETUPS},
            out / "roc.png",
            title=f"Image ROC ({cat})",
        )
        progress(1)
        files["pro"] = rp.plot_pro(
            {s: (test["gts"], test["maps"][s]) for s in SETUPS},
            out / "pro.png",
            title=f"PRO curve ({cat})",
        )
        progress(2)
        per_type = {s: metrics[s][cat]["per_defect_type"] for s in SETUPS}
        files["per_type"] = rp.plot_per_defect_type(per_type, modality, out / "per_defect_type.png")
        progress(3)
        overlays = _overlays(out, test, modality, scales, lambda k: progress(3 + k))
    return overlays


def _overlays(
    out: Path,
    test: dict[str, Any],
    modality: dict[str, str],
    scales: dict[str, MapScale],
    progress: Callable[[int], None],
) -> list[tuple[str, Path]]:
    """The overlay figures, each map on its detector's fixed scale (``scales``, from
    ``report.display_scale``). A defective scan gets the first good test scan as a reference row
    on the same scale: the defect is read against what the detector paints on a good scan."""
    from threedsr_cli import report as rp

    ref = next((j for j, t in enumerate(test["types"]) if t == "good"), None)
    good = None if ref is None else _overlay_row(test, ref)
    overlays: list[tuple[str, Path]] = []
    picks = _overlay_samples(test["types"])
    types = ["good", *sorted(t for t in set(test["types"]) if t != "good")]
    for k, t in enumerate(types, 1):
        for i in [j for tt, j in picks if tt == t]:
            row = _overlay_row(test, i)
            path = rp.overlay_figure(
                row.rgb,
                row.depth,
                row.maps,
                out / "overlays" / f"{t}_{i:03d}.png",
                scale={s: scales[s].range for s in SETUPS},
                threshold={s: scales[s].threshold for s in SETUPS},
                gt=row.gt,
                title=f"{t} ({modality.get(t, 'normal')})",
                scores=row.scores,
                good=None if t == "good" else good,
            )
            overlays.append((t, path))
        progress(k)
    return overlays


def _overlay_row(test: dict[str, Any], i: int) -> OverlayRow:
    """Test scan ``i`` (one of the preprocessed overlay samples) as a row of an overlay figure."""
    from threedsr_cli.report import OverlayRow

    p = test["prepared"][i]
    return OverlayRow(
        p.rgb,
        p.depth,
        {s: test["maps"][s][i] for s in SETUPS},
        test["gts"][i],
        {s: float(test["scores"][s][i]) for s in SETUPS},
    )


def _verdict(metrics: dict[str, dict[str, Any]], modality: dict[str, str], cat: str) -> str:
    depth_only = sorted(t for t, m in modality.items() if m == "depth")
    parts = []
    for t in depth_only:
        a = metrics["rgbd"][cat]["per_defect_type"].get(t)
        b = metrics["rgb"][cat]["per_defect_type"].get(t)
        if a is not None and b is not None:
            parts.append(f"{t}: rgbd {100 * a:.1f} vs rgb {100 * b:.1f}")
    return "; ".join(parts)


def _report_text(
    profile: DemoProfile,
    meta: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    overlays: list[tuple[str, Path]],
    timing: dict[str, float],
    out: Path,
) -> tuple[str, str]:
    from threedsr_cli import report as rp

    cat = profile.category
    modality = dict(meta.get("defect_types", {}))
    overall = rp.metrics_table({s: metrics[s][cat] for s in SETUPS})
    per_type = rp.defect_type_table(
        {s: metrics[s][cat]["per_defect_type"] for s in SETUPS}, modality
    )
    method = str(metrics[SETUPS[0]][cat].get("method", "memory"))
    verdict = _verdict(metrics, modality, cat)
    intro = (
        f"Synthetic `depthsim.scenes` class `{cat}` ({profile.image_size} px; {profile.n_train} "
        f"good training scans, {profile.n_test_per_type} test scans per type). Stage 1: "
        + (
            f"DADA (rgbd) and an RGB-only VQ-VAE, {profile.dada_iterations} iterations each"
            if "stage 1 (rgbd + rgb)" in timing
            else "the pretrained DADA (rgbd) and RGB-only VQ-VAE that ship with threedsr"
        )
        + "; detectors: "
        + (
            "the descriptor memory (nothing trained; a kNN over hand-made descriptors of the "
            f"good scans) at {profile.detector_size} px"
            if method == "memory"
            else f"{method} (3DSR network, {profile.detector_iterations} iterations each) at "
            f"{profile.detector_size} px"
        )
        + ". All numbers in %. Dents and bumps change only the geometry "
        "(invisible in RGB), stains only the colour, cracks both."
    )
    timing_rows = [["stage", "seconds"]] + [[k, f"{v:.1f}"] for k, v in timing.items()]
    rel = [(t, p.relative_to(out).as_posix()) for t, p in overlays]
    md = (
        "\n\n".join(
            [
                "# threedsr demo report",
                intro,
                "## Metrics (test split)",
                rp.markdown_table(overall),
                "## Image AUROC per defect type",
                rp.markdown_table(per_type),
                f"Depth-only defects: {verdict}.",
                "![per defect type](per_defect_type.png)",
                "## Curves",
                "![ROC](roc.png) ![PRO](pro.png)",
                "## Anomaly maps (rgbd and rgb detectors, on RGB and on depth)",
                "\n\n".join(f"### {t}\n\n![{t}]({r})" for t, r in rel),
                "## Timing",
                rp.markdown_table(timing_rows),
            ]
        )
        + "\n"
    )
    import html

    page = rp.render_html(
        "threedsr demo report",
        [
            ("Setup", f"<p>{html.escape(intro)}</p>"),
            ("Metrics (test split)", rp.html_table(overall)),
            (
                "Image AUROC per defect type",
                rp.html_table(per_type)
                + f"<p>Depth-only defects: {html.escape(verdict)}.</p>"
                + "<img src='per_defect_type.png' alt='per defect type'>",
            ),
            ("Curves", "<img src='roc.png' alt='ROC'> <img src='pro.png' alt='PRO'>"),
            (
                "Anomaly maps (rgbd and rgb detectors, on RGB and on depth)",
                "\n".join(
                    f"<h3>{html.escape(t)}</h3><img src='{html.escape(r)}' alt='{html.escape(t)}'>"
                    for t, r in rel
                ),
            ),
            ("Timing", rp.html_table(timing_rows)),
        ],
    )
    return md, page


def _summary(
    ui: UI,
    metrics: dict[str, dict[str, Any]],
    modality: dict[str, str],
    cat: str,
    out: Path,
    total_s: float,
) -> None:
    from rich.table import Table

    from threedsr_cli.report import fmt_metric

    first = metrics[SETUPS[0]][cat]
    table = Table(
        title=f"threedsr demo: {cat} (synthetic), method {first.get('method')}, "
        f"{total_s / 60:.1f} min",
        # A handful of test scans per type: one scan moves an AUROC by tens of points.
        caption=(
            f"{first.get('n_good')} good / {first.get('n_defective')} defective test scans"
            + ("; --fast: these AUROCs are noise" if first.get("n_good", 0) < 10 else "")
        ),
    )
    table.add_column("")
    table.add_column("visible in")
    for s in SETUPS:
        table.add_column(f"{s} I-AUROC", justify="right")
    for key, label in (("image_auroc", "all defects"),):
        table.add_row(label, "", *(fmt_metric(metrics[s][cat].get(key)) for s in SETUPS))
    types = sorted(metrics["rgbd"][cat]["per_defect_type"])
    for t in types:
        table.add_row(
            t,
            modality.get(t, "?"),
            *(fmt_metric(metrics[s][cat]["per_defect_type"].get(t)) for s in SETUPS),
        )
    table.add_row("P-AUROC", "", *(fmt_metric(metrics[s][cat].get("pixel_auroc")) for s in SETUPS))
    table.add_row("AUPRO@0.3", "", *(fmt_metric(metrics[s][cat].get("aupro")) for s in SETUPS))
    ui.out.print(table)
    ui.out.print(f"report: {out / 'report.html'}  (also report.md, metrics.json)")


def demo_plan(method: str | None, device: str, *, fast: bool) -> tuple[str, DemoProfile]:
    """The method and profile of a demo on ``device`` when ``--method`` may be unset: a GPU
    trains the 3DSR network itself in minutes; a CPU shows the memory (3DSR's CPU schedule is
    near chance on real data).

    Example:
        >>> [(m, p.detector_preset) for m, p in (demo_plan(None, d, fast=False) for d in ("cuda:0", "cpu"))]
        [('3dsr', 'gpu'), ('memory', 'cpu')]
    """
    on_gpu = device.startswith("cuda")
    if method is None:
        method = "3dsr" if on_gpu else "memory"
    if fast:
        return method, DemoProfile.fast()
    return method, DemoProfile.gpu() if on_gpu and method != "memory" else DemoProfile()


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
                config = _stage_one_config(profile, setup, folder, dev, seed)
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
            config = _detector_config(
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
        test = _test_results(ui, samples, detectors[SETUPS[0]].preprocess)
        lap("evaluate", t0)

        t0 = time.perf_counter()
        modality = dict(meta.get("defect_types", {}))
        from threedsr_cli.report import display_scale

        scales = {s: display_scale(det) for s, det in detectors.items()}
        overlays = _report(ui, out, profile, meta, metrics, test, scales)
        lap("report", t0)
        total = time.perf_counter() - t_start
        timing["total"] = round(total, 2)
        summary = {
            **metrics,
            "category": profile.category,
            "defect_modality": modality,
            "depth_only_verdict": _verdict(metrics, modality, profile.category),
            "profile": profile.to_dict(),
            "seed": seed,
            "device": dev,
            "timing_s": timing,
        }
        atomic_write_json(out / "metrics.json", summary)
        from threedsr_cli import report as rp

        md, page = _report_text(profile, meta, metrics, overlays, timing, out)
        rp.write_text_files(out, md, page)
    run.finish(total_s=total)
    _summary(ui, metrics, modality, profile.category, out, total)
    return summary
