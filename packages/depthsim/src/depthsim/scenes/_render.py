"""Render one synthetic scan: pinhole camera over a tilted support plane carrying one object.

Three independent random streams are derived from the caller's generator: the scene (pose,
object, colours, texture, light), the sensor (depth noise, dropouts, image grain) and the defect.
The RGB image is shaded from the defect-free surface, so depth-only defects leave it byte-identical
to the defect-free render of the same scene; a stain only repaints the albedo, so the xyz stays
byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthsim._rng import DepthsimError, RngLike, as_generator, check_shape
from depthsim.noise import perlin_batch
from depthsim.scenes._defects import DEFECT_MODALITY, GT_IDS, make_defect
from depthsim.scenes._objects import OBJECT_CLASSES

FIELD_OF_VIEW_M = 0.075
"""Width of the imaged area at the nominal plane distance (objects fill about half the image)."""
NOMINAL_DISTANCE_M = 0.6
"""Nominal camera-to-support distance; each scene draws its own within +-2 cm."""


@dataclass(frozen=True)
class Scene:
    """One synthetic scan in MVTec 3D-AD conventions.

    Attributes:
        xyz: ``(H, W, 3)`` float32 camera coordinates in metres; invalid points are exactly 0.
        rgb: ``(H, W, 3)`` uint8.
        gt: ``(H, W)`` uint8: 0 where good, the defect type's id (:data:`GT_IDS`) on the defect.
        object_mask: ``(H, W)`` bool, the object's footprint (height above the plane > 0).
        class_name: object class.
        defect_type: ``"good"`` or a key of :data:`DEFECT_MODALITY`.
        focal_px: pinhole focal length in pixels (principal point at the image centre).
    """

    xyz: np.ndarray
    rgb: np.ndarray
    gt: np.ndarray
    object_mask: np.ndarray
    class_name: str
    defect_type: str
    focal_px: float


def focal_length_px(size: int) -> float:
    """Fixed pinhole focal length for an image of ``size`` px: the field of view at 0.6 m."""
    return size * NOMINAL_DISTANCE_M / FIELD_OF_VIEW_M


def _rotation(tx: float, ty: float) -> np.ndarray:
    cx, sx, cy, sy = np.cos(tx), np.sin(tx), np.cos(ty), np.sin(ty)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return ry @ rx


def _normals(xyz: np.ndarray) -> np.ndarray:
    """Unit surface normals facing the camera, from the organized point cloud."""
    du = np.gradient(xyz, axis=1)
    dv = np.gradient(xyz, axis=0)
    n = np.cross(du, dv)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    return np.where(n[..., 2:3] > 0, -n, n)


def render_scene(
    class_name: str,
    *,
    size: int | tuple[int, int] = 128,
    defect: str | None = None,
    rng: RngLike = None,
) -> Scene:
    """Render one scan of ``class_name``, optionally with a defect.

    The same ``rng`` (seed) with a different ``defect`` renders the same object in the same pose:
    depth-only defects (``dent``, ``bump``) then change only ``xyz`` and ``stain`` only ``rgb``.

    Args:
        class_name: one of ``OBJECT_CLASSES`` (``puck``, ``bar``, ``dome``).
        size: image side (or ``(H, W)``).
        defect: None / ``"good"`` or a key of ``DEFECT_MODALITY``.
        rng: Generator, seed or None.

    Returns:
        A :class:`Scene`.

    Example:
        >>> s = render_scene("puck", size=64, defect="dent", rng=0)
        >>> s.xyz.shape, s.xyz.dtype, s.rgb.dtype, int(s.gt.max())
        ((64, 64, 3), dtype('float32'), dtype('uint8'), 255)
    """
    if class_name not in OBJECT_CLASSES:
        raise DepthsimError(
            f"class_name: unknown class {class_name!r}; expected one of {sorted(OBJECT_CLASSES)}"
        )
    kind = None if defect in (None, "good") else defect
    if kind is not None and kind not in DEFECT_MODALITY:
        raise DepthsimError(
            f"defect: unknown type {defect!r}; expected one of {sorted(DEFECT_MODALITY)}"
        )
    h_px, w_px = check_shape(size, "size")
    if min(h_px, w_px) < 8:
        raise DepthsimError(f"size: images must be at least 8 px per side, got {(h_px, w_px)}")
    key = int(as_generator(rng).integers(2**63))
    g_scene, g_sensor, g_defect = (np.random.default_rng([key, i]) for i in range(3))

    # Camera and support plane.
    dist = g_scene.uniform(0.58, 0.62)
    focal = focal_length_px(max(h_px, w_px))
    rot = _rotation(*np.deg2rad(g_scene.uniform(-8, 8, 2)))
    normal = rot @ np.array([0.0, 0.0, -1.0])  # towards the camera
    e1, e2 = rot @ np.array([1.0, 0.0, 0.0]), rot @ np.array([0.0, 1.0, 0.0])
    origin = np.array([0.0, 0.0, dist])
    v, u = np.mgrid[0:h_px, 0:w_px].astype(np.float64)
    rays = np.stack(
        [(u - (w_px - 1) / 2) / focal, (v - (h_px - 1) / 2) / focal, np.ones_like(u)], -1
    )
    plane = rays * ((origin @ normal) / (rays @ normal))[..., None]
    a, b = (plane - origin) @ e1, (plane - origin) @ e2
    plane_dist = abs(origin @ normal)

    # Object pose and clean height field.
    obj = OBJECT_CLASSES[class_name](g_scene)
    pos = g_scene.uniform(-0.008, 0.008, 2)
    phi = g_scene.uniform(0, 2 * np.pi)
    s1 = (a - pos[0]) * np.cos(phi) + (b - pos[1]) * np.sin(phi)
    s2 = -(a - pos[0]) * np.sin(phi) + (b - pos[1]) * np.cos(phi)
    h_clean = obj.height(s1, s2)
    footprint = h_clean > 0

    # Albedo: class colour and texture on the object, a textured dark support elsewhere.
    tex = perlin_batch(2, (h_px, w_px), (4, 4), rng=g_scene, octaves=4)
    colour = np.clip(np.asarray(obj.colour) * g_scene.uniform(0.9, 1.1, 3), 0, 1)
    support = np.clip(np.array([0.24, 0.26, 0.24]) * g_scene.uniform(0.8, 1.2, 3), 0, 1)
    albedo = np.where(
        footprint[..., None],
        colour * (1 + 0.10 * tex[0, ..., None]),
        support * (1 + 0.25 * tex[1, ..., None]),
    )
    light = np.array([g_scene.uniform(-0.5, 0.5), g_scene.uniform(-0.5, 0.5), -1.0])
    light /= np.linalg.norm(light)

    effect = make_defect(kind, g_defect, s1, s2, h_clean, obj.size) if kind else None
    h_def = h_clean + effect.dh if effect is not None and effect.dh is not None else h_clean
    if effect is not None and effect.paint is not None:
        albedo = albedo * (1 - effect.paint[..., None]) + effect.colour * effect.paint[..., None]

    # Shading from the clean surface only (depth-only defects stay invisible in RGB).
    xyz_clean = plane * (1 - h_clean / plane_dist)[..., None]
    n = _normals(xyz_clean)
    view = -xyz_clean / np.linalg.norm(xyz_clean, axis=-1, keepdims=True)
    diffuse = np.clip(n @ light, 0, None)
    half = (view + light) / np.linalg.norm(view + light, axis=-1, keepdims=True)
    spec = obj.specular * np.clip(np.sum(n * half, -1), 0, None) ** 40 * footprint
    rgb = albedo * (0.35 + 0.65 * diffuse)[..., None] + spec[..., None]
    rgb = rgb + g_sensor.normal(0, 0.008, rgb.shape)
    rgb8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)

    # Geometry with sensor noise along the rays and dropouts (clusters, more at steep edges).
    z = plane[..., 2] * (1 - h_def / plane_dist)
    z_noisy = z + g_sensor.normal(0, g_sensor.uniform(1e-4, 3e-4), z.shape)
    xyz = rays * z_noisy[..., None]
    gy, gx = np.gradient(z)
    slope = np.hypot(gx, gy) * focal / z  # depth change per unit lateral distance
    clusters = perlin_batch(1, (h_px, w_px), (max(1, h_px // 8), max(1, w_px // 8)), rng=g_sensor)[
        0
    ]
    drop_p = np.clip((slope - 2.0) / 8.0, 0.0, 0.5)
    invalid = (clusters > g_sensor.uniform(0.6, 0.75)) | (g_sensor.random(z.shape) < drop_p)
    xyz[invalid] = 0.0

    gt = np.zeros((h_px, w_px), np.uint8)
    if effect is not None:
        gt[effect.gt] = GT_IDS[kind]
    return Scene(
        xyz=xyz.astype(np.float32),
        rgb=rgb8,
        gt=gt,
        object_mask=footprint,
        class_name=class_name,
        defect_type=kind or "good",
        focal_px=float(focal),
    )
