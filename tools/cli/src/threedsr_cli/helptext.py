"""The long help texts of ``threedsr-cli``: each command's examples (its ``--help`` epilog)."""

from __future__ import annotations

__all__ = ["EPILOGS"]

EPILOGS: dict[str, str] = {
    "demo": (
        "Examples:\n\n"
        "  threedsr-cli demo                      # full demo into ./demo-run (< 10 min, 2 cores)\n\n"
        "  threedsr-cli demo --fast --out /tmp/d  # sub-minute smoke run\n\n"
        "  threedsr-cli demo --resume             # continue an interrupted demo"
    ),
    "train-dada": (
        "Examples:\n\n"
        "  threedsr-cli train-dada --preset cpu --out runs/dada\n\n"
        "  threedsr-cli train-dada --preset paper --rgb-dir ~/imagenet/train --out runs/dada "
        "--device cuda\n\n"
        "  threedsr-cli train-dada --preset cpu --setup rgb --out runs/rgb-backbone\n\n"
        "  threedsr-cli train-dada --preset cpu --out runs/dada --resume   # after Ctrl-C"
    ),
    "train": (
        "Methods (--method):\n\n"
        "  memory  the descriptor memory: a kNN over hand-made surface, colour, texture and "
        "interior descriptors of the good scans. Nothing is trained: under a minute on 2 "
        "quiet CPU cores for 223 scans (MVTec 3D-AD cable_gland). The default.\n\n"
        "  3dsr    the 3DSR network (Zavrtanik et al., WACV 2024): heads trained on a frozen "
        "stage-1 backbone. Needs GPU-scale training (--preset paper: 30k iterations, hours); "
        "--preset cpu is a minutes-long CPU schedule whose map is near chance on real data.\n\n"
        "  fused   both maps fused; costs the 3DSR training.\n\n"
        "Examples:\n\n"
        "  threedsr-cli train --data mvtec3d --category bagel --out runs/bagel   "
        "# descriptor memory\n\n"
        "  threedsr-cli train --data mvtec3d --category bagel --setup depth --method 3dsr "
        "--preset paper --dada runs/dada-depth/backbone.pt --out runs/bagel-3dsr --device cuda\n\n"
        "  threedsr-cli train ... --method 3dsr --out runs/bagel-3dsr --resume   # after Ctrl-C"
    ),
    "eval": (
        "Examples:\n\n"
        "  threedsr-cli eval --run runs/bagel --data mvtec3d\n\n"
        "  threedsr-cli eval --run runs/bagel/detector.pt --data mvtec3d --category bagel "
        "--out results/bagel"
    ),
    "pack": (
        "Examples:\n\n"
        "  threedsr-cli pack --data mvtec3d --category cable_gland --out cable_gland.3dsrpack\n\n"
        "  threedsr-cli pack --data mvtec3d --category cable_gland --size 256 --rgb uint8 "
        "--out cg256.3dsrpack   # small enough for a 64 MiB upload\n\n"
        "  threedsr-cli train --data cg256.3dsrpack --out runs/cg   # the class comes from the pack"
    ),
    "predict": (
        "Examples:\n\n"
        "  threedsr-cli predict --run runs/bagel mvtec3d/bagel/test/crack\n\n"
        "  threedsr-cli predict --run runs/bagel scan1.tiff scan1.png scan2.tiff scan2.png\n\n"
        "  threedsr-cli predict --run runs/bagel my_scans/ --threshold auto --data mvtec3d\n\n"
        "  threedsr-cli predict --run runs/candy eyecandies/CandyCane/test_public/data/25_depth.png\n\n"
        "  threedsr-cli predict --run runs/bagel part.tiff part.png --threshold 0.42 --out preds\n\n"
        "  threedsr-cli predict --run runs/bagel/detector.onnx --backend onnxruntime scans/"
    ),
    "export": (
        "Examples:\n\n"
        "  threedsr-cli export --run runs/bagel                 # runs/bagel/detector.onnx\n\n"
        "  threedsr-cli export --run runs/bagel --format torchscript --out bagel.pt\n\n"
        "  threedsr-cli export --run runs/bagel --out bagel.onnx --dynamic-batch --threshold 0.42"
    ),
}
