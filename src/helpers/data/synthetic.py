"""Seeded procedural colonoscopy-like frames, written in the real datasets' layouts.

No dataset can be downloaded where the course runs, so the default data is
drawn here: pink/red mucosa with texture, folds, a dark lumen and vessels,
vignetting and the black octagonal frame of an endoscope, wet specular
highlights, blur and exposure variation; polyps as raised, shaded, textured
blobs (0-3 per frame); dyed-lifted polyps sitting on a blue (indigo carmine)
cushion. Every frame has its own RNG derived from (seed, kind, index), so the
output is byte-identical for the same seed whatever the order or parallelism.

Every frame comes from one of several named **centres** (`CENTRES`): the same
anatomy seen through another hospital's imaging chain (colour response and
white balance, illumination fall-off, resolution and aspect ratio, sharpness
and noise, JPEG quality, field-of-view shape, and on-screen overlays such as
Kvasir's green position-guide inset and text). ``centres.csv`` at the root
names each file's centre; the course holds `HELD_OUT_CENTRE` out of training
entirely, as an out-of-centre test set (`helpers.data.course`).

The trees written are the ones the real data uses, so the same loaders read
both (notebook 00 teaches this):

    kvasir-v2/<class>/<id>.jpg            Kvasir v2 classification layout
    kvasir-v2-masks/<class>/<id>.png      polyp masks of the classification frames
    kvasir-seg/images/<id>.jpg            Kvasir-SEG layout (masks are JPEG,
    kvasir-seg/masks/<id>.jpg             like the real ones: threshold at 128)
    unlabeled/<id>.jpg                    pool for self-supervised pretraining
    centres.csv                           file,centre for every image above
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ..numerics import PINNED_ISA
from ..progress import progress

NUMPY_PIN = "NPY_DISABLE_CPU_FEATURES"

GENERATOR_VERSION = 3
CLASSES = ("normal-cecum", "polyps", "dyed-lifted-polyps")
# Screening data is imbalanced: normal frames are common, dyed-lifted polyps rare.
CLASS_SHARE = {"normal-cecum": 1.0, "polyps": 0.6, "dyed-lifted-polyps": 0.4}
_KIND_IDS = {"cls": 1, "seg": 2, "unlabeled": 3}
# Polyp radius range, as a fraction of the frame's shorter side. Real Kvasir frames are close-ups: a Kvasir-SEG
# mask covers 15% of its frame on average (median 11%); (0.10, 0.34) gives 12%. Version 2 drew classification
# frames at (0.07, 0.20), 5%: at 64 px no model could tell a polyp from a fold, so the 3-class task tested nothing.
POLYP_RADIUS = (0.10, 0.34)


@dataclass(frozen=True)
class Centre:
    """One synthetic hospital: the imaging chain between the mucosa and the saved file."""

    name: str
    description: str
    share: float  # of all frames
    scale: float  # frame width relative to the profile's side range
    aspect: tuple[float, float]  # height / width
    white_balance: tuple[float, float, float]  # gain per RGB channel
    saturation: float  # 1 = as rendered, < 1 washed out
    gamma: tuple[float, float]
    vignetting: tuple[float, float]  # darkening at the corners
    blur: tuple[float, ...]  # Gaussian sigmas (px at the generated size), one drawn per frame
    noise: float  # sensor noise sd on [0, 1]
    jpeg_quality: int
    fov: str  # field of view: "octagon", "circle" or "rounded"
    guide_inset: bool  # the green position-guide box in the lower left, as in Kvasir frames
    text: str  # "" or where the on-screen text sits: "top-left", "top-right"


CENTRES = (
    Centre(
        "vestre",
        "Kvasir-like: octagonal field, green position-guide inset, text, mid resolution",
        0.35,
        1.0,
        (0.75, 0.9),
        (1.0, 1.0, 1.0),
        1.0,
        (0.8, 1.25),
        (0.25, 0.5),
        (0.0, 0.0, 0.6, 1.2),
        0.012,
        90,
        "octagon",
        True,
        "top-left",
    ),
    Centre(
        "clinic",
        "CVC-ClinicDB-like: small 4:3 frames, round field, cooler white balance",
        0.25,
        0.75,
        (0.75, 0.75),
        (0.96, 1.0, 1.08),
        0.9,
        (0.9, 1.15),
        (0.3, 0.45),
        (0.0, 0.6),
        0.01,
        85,
        "circle",
        False,
        "top-left",
    ),
    Centre(
        "hd-wide",
        "HD 16:9 video processor: sharp, bright, little fall-off, no overlays",
        0.2,
        1.25,
        (0.5625, 0.5625),
        (1.03, 1.02, 0.96),
        1.1,
        (0.85, 1.05),
        (0.1, 0.25),
        (0.0, 0.0, 0.6),
        0.008,
        95,
        "rounded",
        False,
        "",
    ),
    Centre(
        "etis",
        "ETIS-Larib-like: large frames, warm cast, strong fall-off, soft focus, noise, heavy JPEG",
        0.2,
        1.3,
        (0.79, 0.79),
        (1.12, 0.95, 0.8),
        0.8,
        (1.1, 1.4),
        (0.45, 0.7),
        (1.2, 2.0, 2.8),
        0.03,
        70,
        "circle",
        False,
        "top-right",
    ),
)
CENTRE_NAMES = tuple(c.name for c in CENTRES)
HELD_OUT_CENTRE = "etis"  # never trained on: the out-of-centre test set
CENTRES_FILE = "centres.csv"


@dataclass
class Frame:
    """One generated frame: RGB pixels, its binary polyp mask and what was drawn."""

    image: np.ndarray  # HxWx3 uint8
    mask: np.ndarray  # HxW uint8 in {0, 1}
    n_polyps: int
    dyed: bool
    polyp_areas: list[int] = field(default_factory=list)
    centre: str = CENTRES[0].name


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    gh, gw = max(2, int(round(h / cell))), max(2, int(round(w / cell)))
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32))
    return np.clip(np.asarray(grid.resize((w, h), Image.BICUBIC)), 0.0, 1.0)


def _fractal(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * _noise(rng, h, w, cell)
        total += amp
        amp, cell = amp * 0.5, max(2.0, cell / 2)
    return out / total


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float image (HxW, or HxWx3 per channel)."""
    if sigma <= 0:
        return a
    return ndimage.gaussian_filter(a, sigma=(sigma, sigma, 0) if a.ndim == 3 else sigma)


def _endoscope_frame(h: int, w: int, cut: float, shape: str = "octagon") -> np.ndarray:
    """1 inside the field of view (octagon, circle or rounded rectangle), 0 in the black border."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = cut * min(h, w)
    if shape == "circle":  # a round field, clipped by the frame's top and bottom
        inside = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) <= (0.72 - cut) * min(h, w)
    elif shape == "rounded":  # a wide rectangle with round corners
        dy = np.maximum(np.abs(yy - (h - 1) / 2) - (h / 2 - c), 0)
        dx = np.maximum(np.abs(xx - (w - 1) / 2) - (w / 2 - c - 0.06 * w), 0)
        inside = np.hypot(dy, dx) <= c * 0.9
    else:
        inside = (
            (xx + yy >= c) & ((w - 1 - xx) + yy >= c) & (xx + (h - 1 - yy) >= c) & ((w - 1 - xx) + (h - 1 - yy) >= c)
        )
    return inside.astype(np.float32)


def _mucosa(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Textured mucosa with folds, lumen and vessels; also returns its base colour."""
    base = np.array([rng.uniform(0.72, 0.92), rng.uniform(0.30, 0.44), rng.uniform(0.28, 0.40)], np.float32)
    tex = _fractal(rng, h, w, cell=min(h, w) / 3, octaves=4)
    img = base * (0.78 + 0.44 * tex)[..., None]
    # Haustral folds: dark bands with a lit upper edge, along large arcs.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(-1.5, 2.5) * h, rng.uniform(-1.0, 2.0) * w
        radius = np.hypot(cy - h / 2, cx - w / 2) * rng.uniform(0.6, 1.1)
        width = rng.uniform(0.02, 0.05) * min(h, w)
        d = (np.hypot(yy - cy, xx - cx) - radius) / width
        img *= (1 - 0.28 * np.exp(-(d**2)) + 0.10 * np.exp(-((d + 1.6) ** 2)))[..., None]
    # Lumen: the dark tunnel the scope looks down.
    if rng.random() < 0.8:
        ly, lx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        sigma = rng.uniform(0.08, 0.18) * min(h, w)
        img *= (1 - 0.85 * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * sigma**2)))[..., None]
    # Vessels: thin, blurred random walks tinted dark red.
    layer = Image.new("F", (w, h), 0.0)
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(3, 9)):
        pts = [(rng.uniform(0, w), rng.uniform(0, h))]
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(6, 14)):
            angle += rng.normal(0, 0.5)
            step = rng.uniform(0.03, 0.08) * min(h, w)
            pts.append((pts[-1][0] + step * np.cos(angle), pts[-1][1] + step * np.sin(angle)))
        draw.line(pts, fill=float(rng.uniform(0.4, 1.0)), width=int(max(1, min(h, w) // 140)))
    vessels = _blur(np.asarray(layer), 0.8)
    img *= 1 - vessels[..., None] * np.array([0.25, 0.55, 0.45], np.float32)
    return img, base


def _polyp_shape(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, r: float):
    """Irregular dome: inside mask and height map (1 at the top, 0 at the rim)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    rho, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    stretch = rng.uniform(0.75, 1.25)
    rho = np.hypot(dy * stretch, dx / stretch)
    edge = np.full_like(theta, r)
    for k in range(2, 5):
        edge += r * rng.uniform(0.0, 0.12) * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    t = np.clip(rho / edge, 0.0, 1.5)
    height = np.sqrt(np.clip(1 - t**2, 0.0, 1.0))
    return (t < 1.0), height


def _draw_polyp(
    rng: np.random.Generator, img: np.ndarray, inside: np.ndarray, height: np.ndarray, base: np.ndarray, dyed: bool
) -> None:
    """Shade a raised, textured polyp into `img` in place (Lambert light from the scope)."""
    h, w = inside.shape
    gy, gx = np.gradient(height * 8.0)
    light = np.array([-0.5, -0.6, 1.0], np.float32)
    light /= np.linalg.norm(light)
    normal_z = 1.0 / np.sqrt(gx**2 + gy**2 + 1.0)
    lambert = np.clip((-gx * light[0] - gy * light[1] + light[2]) * normal_z, 0.0, 1.0)
    pits = _fractal(rng, h, w, cell=max(3.0, min(h, w) / 40), octaves=2)
    # Polyps are mucosa too: close to its colour, a little redder; shape and shading give them away.
    colour = np.clip(base * np.array([rng.uniform(1.0, 1.15), rng.uniform(0.8, 1.05), rng.uniform(0.85, 1.05)]), 0, 1)
    if dyed:
        colour = 0.55 * colour + 0.45 * np.array([0.35, 0.42, 0.80], np.float32)
    polyp = colour * ((0.35 + 0.75 * lambert) * (0.65 + 0.35 * height) * (0.85 + 0.3 * pits))[..., None]
    alpha = _blur(inside.astype(np.float32), 1.0)[..., None]
    img[:] = img * (1 - alpha) + polyp * alpha
    # Wet shine on top of the dome.
    shine = np.exp(-((1 - height) ** 2) / 0.004) * (lambert > 0.9) * inside
    img[:] = np.clip(img + _blur(shine.astype(np.float32), 1.0)[..., None] * rng.uniform(0.4, 0.9), 0, 1.2)


def _dye_cushion(rng: np.random.Generator, img: np.ndarray, cy: float, cx: float, r: float) -> None:
    """Indigo carmine lifted cushion: a blue, slightly raised area around the polyp."""
    h, w = img.shape[:2]
    inside, height = _polyp_shape(rng, h, w, cy, cx, r * rng.uniform(1.6, 2.3))
    blue = np.array([0.22, 0.30, 0.70], np.float32) * (0.7 + 0.5 * height)[..., None]
    alpha = _blur(inside.astype(np.float32), 2.5) * (0.55 + 0.35 * _noise(rng, h, w, min(h, w) / 6))
    img[:] = img * (1 - alpha[..., None]) + blue * alpha[..., None]


def _specular(rng: np.random.Generator, img: np.ndarray, n: int) -> None:
    h, w = img.shape[:2]
    layer = Image.new("F", (w, h), 0.0)
    draw = ImageDraw.Draw(layer)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(0.5, 2.5), rng.uniform(0.5, 1.5)
        s = min(h, w) / 150
        draw.ellipse([x - a * s, y - b * s, x + a * s, y + b * s], fill=1.0)
    img[:] = img + _blur(np.asarray(layer), 0.7)[..., None] * 0.9


def _overlays(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, centre: Centre) -> None:
    """Draw the centre's on-screen overlays onto the uint8 frame in place; the opaque inset hides polyp pixels."""
    h, w = mask.shape
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    if centre.guide_inset:  # Kvasir's position guide: a dark green box with the scope's bright green outline
        side = int(round(rng.uniform(0.2, 0.26) * h))
        x0, y0 = int(rng.integers(0, max(1, w // 40))), h - side - int(rng.integers(0, max(1, h // 40)))
        draw.rectangle([x0, y0, x0 + side, y0 + side], fill=(12, 52, 20))
        t = np.linspace(0, 1, 12)
        wiggle = rng.uniform(-0.25, 0.25, 4)
        pts = [
            (x0 + side * (0.2 + 0.6 * u), y0 + side * (0.8 - 0.6 * u + wiggle[int(u * 3.99)] * u * (1 - u))) for u in t
        ]
        draw.line(pts, fill=(60, 220, 80), width=max(2, side // 16))
        mask[y0 : y0 + side + 1, x0 : x0 + side + 1] = 0
    if centre.text:
        size = max(6, h // 22)
        font = ImageFont.load_default(size=size)
        lines = [
            f"{int(rng.integers(2010, 2024))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
            f"ID {int(rng.integers(1000, 9999))}",
        ]
        x = w // 40 if centre.text == "top-left" else w - w // 4
        for i, line in enumerate(lines):
            draw.text((x, h // 40 + i * (size + 2)), line, fill=(235, 235, 235), font=font)
    img[:] = np.asarray(pil)


def render_frame(
    rng: np.random.Generator,
    h: int,
    w: int,
    n_polyps: int,
    dyed: bool = False,
    radius: tuple[float, float] = POLYP_RADIUS,
    centre: Centre = CENTRES[0],
) -> Frame:
    """Draw one frame with `n_polyps` non-overlapping polyps (dyed: on blue cushions), through `centre`'s chain.

    `radius` is the polyp radius range as a fraction of the shorter side.
    """
    img, base = _mucosa(rng, h, w)
    fov = _endoscope_frame(h, w, rng.uniform(0.10, 0.18), centre.fov)
    mask = np.zeros((h, w), bool)
    placed: list[tuple[float, float, float]] = []
    polyps: list[np.ndarray] = []
    side = min(h, w)
    for _ in range(n_polyps):
        for _attempt in range(50):
            r = rng.uniform(*radius) * side * (0.7 if n_polyps > 1 else 1.0)
            my, mx = min(0.8 * r + 0.1 * side, h / 2), min(0.8 * r + 0.1 * side, w / 2)
            cy, cx = rng.uniform(my, h - my), rng.uniform(mx, w - mx)
            if all(np.hypot(cy - py, cx - px) > (r + pr) * 1.25 for py, px, pr in placed):
                break
        else:
            continue  # no room left for another polyp: draw fewer
        if dyed:
            _dye_cushion(rng, img, cy, cx, r)
        inside, height = _polyp_shape(rng, h, w, cy, cx, r)
        _draw_polyp(rng, img, inside, height, base, dyed)
        placed.append((cy, cx, r * 1.3))
        polyps.append(inside)
        mask |= inside
    _specular(rng, img, int(rng.integers(3, 14)))
    # The centre's imaging chain: white balance and saturation, fall-off, gain/gamma, focus, field of view, noise.
    img = img * np.asarray(centre.white_balance, np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + centre.saturation * (img - grey)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    img *= (1 - rng.uniform(*centre.vignetting) * rr**2)[..., None]
    img = np.clip(img * rng.uniform(0.75, 1.3), 0, 1) ** rng.uniform(*centre.gamma)
    img = _blur(img, float(rng.choice(centre.blur)))
    img *= fov[..., None]
    mask &= fov > 0
    pixels = (np.clip(img + rng.normal(0, centre.noise, img.shape), 0, 1) * 255).astype(np.uint8)
    _overlays(rng, pixels, mask, centre)
    # what is left of each polyp once the field of view and the overlays have cut it
    areas = [a for a in (int((inside & mask).sum()) for inside in polyps) if a]
    return Frame(pixels, mask.astype(np.uint8), len(areas), dyed, areas, centre.name)


def _jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class _Job:
    kind: str
    index: int
    seed: int
    min_side: int
    max_side: int
    label: str = ""


def _frame_for(job: _Job) -> Frame:
    rng = np.random.default_rng([job.seed, _KIND_IDS[job.kind], job.index])
    centre = CENTRES[int(rng.choice(len(CENTRES), p=[c.share for c in CENTRES]))]
    w = int(round(rng.integers(job.min_side, job.max_side + 1) * centre.scale))
    h = int(round(w * rng.uniform(*centre.aspect)))
    if job.kind == "cls":
        n = (
            0
            if job.label == "normal-cecum"
            else (1 if job.label == "dyed-lifted-polyps" else int(rng.choice([1, 1, 1, 2, 3])))
        )
        return render_frame(rng, h, w, n, dyed=job.label == "dyed-lifted-polyps", centre=centre)
    if job.kind == "seg":  # like Kvasir-SEG: close-ups, every frame shows at least one polyp
        n = int(rng.choice([1, 2, 3], p=[0.75, 0.18, 0.07]))
        return render_frame(rng, h, w, n, centre=centre)
    label = rng.choice(CLASSES)
    n = 0 if label == "normal-cecum" else int(rng.integers(1, 4))
    return render_frame(rng, h, w, n, dyed=label == CLASSES[2], centre=centre)


def _files_for(job: _Job) -> tuple[str, list[tuple[str, bytes]]]:
    """The frame's centre and its files (path relative to the root, bytes)."""
    frame = _frame_for(job)
    quality = next(c.jpeg_quality for c in CENTRES if c.name == frame.centre)
    name = f"{job.kind}{job.index:05d}"
    if job.kind == "cls":
        out = [(f"kvasir-v2/{job.label}/{name}.jpg", _jpeg(frame.image, quality))]
        if frame.n_polyps:
            out.append((f"kvasir-v2-masks/{job.label}/{name}.png", _png(frame.mask * 255)))
        return frame.centre, out
    if job.kind == "seg":
        rgb_mask = np.repeat((frame.mask * 255)[..., None], 3, axis=2)  # real masks are RGB JPEGs
        return frame.centre, [
            (f"kvasir-seg/images/{name}.jpg", _jpeg(frame.image, quality)),
            (f"kvasir-seg/masks/{name}.jpg", _jpeg(rgb_mask)),
        ]
    return frame.centre, [(f"unlabeled/{name}.jpg", _jpeg(frame.image, quality))]


def generate(
    root: Path,
    per_class: int,
    seg_pairs: int,
    unlabeled: int,
    seed: int = 0,
    min_side: int = 192,
    max_side: int = 320,
    workers: int | None = None,
) -> Path:
    """Write the embedded dataset under `root` (reused when an identical one is there).

    `per_class` is the size of the largest class; the others follow `CLASS_SHARE`.

    `root` must be a folder this course owns (`paths.synthetic_root`): an
    existing tree made with other settings is replaced, never merged. The
    same seed gives the same bytes on every x86-64 CPU: frames are rendered
    with NumPy pinned to AVX2 (`helpers.numerics`), in a child process when
    the caller's NumPy is not.
    """
    root = Path(root)
    spec = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "per_class": per_class,
        "seg_pairs": seg_pairs,
        "unlabeled": unlabeled,
        "min_side": min_side,
        "max_side": max_side,
        "class_share": CLASS_SHARE,
        "centres": {c.name: c.description for c in CENTRES},
        "held_out_centre": HELD_OUT_CENTRE,
        # the drawing code itself: an edit that changes pixels must never reuse a tree drawn by the old code
        "code_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    stamp = root / "GENERATOR.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return root
    if root.exists():
        if not stamp.is_file():
            raise FileExistsError(
                f"{root} exists but was not made by the generator (no GENERATOR.json); refusing to overwrite it"
            )
        shutil.rmtree(root)
    if os.environ.get(NUMPY_PIN) != PINNED_ISA[NUMPY_PIN]:
        # NumPy's AVX-512 exp/sin/cos round differently from its AVX2 ones and changed the bytes: render in a
        # child process whose NumPy loads with the course's pin, whoever calls (a test, `python -m helpers data`)
        args = {
            "root": str(root),
            "per_class": per_class,
            "seg_pairs": seg_pairs,
            "unlabeled": unlabeled,
            "seed": seed,
            "min_side": min_side,
            "max_side": max_side,
            "workers": workers,
        }
        child = "import json, sys; from helpers.data.synthetic import generate; generate(**json.loads(sys.argv[1]))"
        subprocess.run(
            [sys.executable, "-c", child, json.dumps(args)],
            check=True,
            env=os.environ | {NUMPY_PIN: PINNED_ISA[NUMPY_PIN]},
        )
        return root
    labels = [label for label in CLASSES for _ in range(max(2, round(per_class * CLASS_SHARE[label])))]
    jobs = [_Job("cls", i, seed, min_side, max_side, label) for i, label in enumerate(labels)]
    jobs += [_Job("seg", i, seed, min_side, max_side) for i in range(seg_pairs)]
    jobs += [_Job("unlabeled", i, seed, min_side, max_side) for i in range(unlabeled)]
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    centres = ["file,centre"]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for centre, files in progress(pool.map(_files_for, jobs, chunksize=8), desc="generate frames", total=len(jobs)):
            for rel, blob in files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(blob)
            centres.append(f"{files[0][0]},{centre}")  # the image; a mask follows it
    (tmp / CENTRES_FILE).write_text("\n".join(centres) + "\n")
    (tmp / "GENERATOR.json").write_text(json.dumps(spec, indent=2) + "\n")
    tmp.rename(root)  # only a complete tree ever appears under `root`
    return root
