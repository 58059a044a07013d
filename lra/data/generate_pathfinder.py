"""Offline Pathfinder / Path-X generator: the snake-and-paddle images LRA used, numpy + Pillow only.

An image holds two target snakes, distractor snakes and two round markers; the label is 1 iff
both markers sit on the ends of the same snake. A snake is a chain of `contour_length` short
line segments ("paddles") of length `paddle_length` separated by gaps of `paddle_margin`. The two
target snakes start `seed_distance` apart; each next paddle turns by an angle drawn with weight
cos(min(|turn| * continuity, pi/2))^2 among candidates that stay inside the image and keep
clear of everything drawn so far (so larger `continuity` gives straighter snakes). One marker
goes on the starting tip of a target snake; the other on the far tip of the same snake (label 1)
or of the other target snake (label 0). Layouts are drawn the same way for both labels and kept
only when the two far tips lie equally far from the first marker (within
`marker_distance_tolerance`) and no farther than a straight snake reaches (the first marker goes
on a random one of the starting tips for which this holds), so the marker distance does not give
the label away, nor does any other statistic of where the bright pixels are: a one-threshold rule
on such a feature scores near chance on every variant (tests/test_data_pathfinder.py). Distractor
snakes of `distractor_length` paddles fill the rest. Strokes are drawn at `antialias_scale` times
the resolution and downsampled with Lanczos (antialiased), or with `binary` made background,
stroke or marker pixels by covered fraction. A paddle's intensity is `snake_contrast` times its
`paddle_contrast`; with `rescale_to_max` each image is then scaled so that its brightest pixel is
255, as the original generator saved its float images (drewlinsley/pathfinder `snakes2.py` through
`scipy.misc.imsave`, which rescales an image's range to 0..255), so that LRA's strokes at 2 x 0.75
= 1.5 stay brighter than the markers; without it intensities above 1 are clipped at white.

Lengths are in output pixels. The settings and their named variants are in
`lra.data.pathfinder_params` ("lra" = LRA's hard split: `curv_contour_length_14` at 32x32 and
128x128); every field can be overridden. Output is the official layout: `pathfinder<res>/<folder>/imgs/<batch>/sample_<n>.png`
plus `metadata/<batch>.npy` text lines. Images are deterministic by (parameters, seed, index),
whatever the number of worker processes; labels are exactly balanced within each split.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lra.io import atomic_write_json, atomic_write_text

from .lra_release import GENERATED_MARKER
from .pathfinder_params import PATHFINDER_VARIANTS as PATHFINDER_VARIANTS
from .pathfinder_params import PATHX_VARIANTS as PATHX_VARIANTS
from .pathfinder_params import PathfinderParams, params_description
from .pathfinder_params import pathfinder_params as pathfinder_params
from .progress import default_workers, progress, worker_context

SPLITS = ("train", "val", "test")
CANDIDATE_TURNS = 16  # candidate directions tried for each next paddle
MAX_IMAGE_ATTEMPTS = 2_000
CHUNK = 100  # images per work unit of the worker processes


# ---------------------------------------------------------------------------------------------
# Geometry and rendering
# ---------------------------------------------------------------------------------------------


def _segment_distance(px: np.ndarray, py: np.ndarray, seg: tuple[float, float, float, float]) -> np.ndarray:
    """Distance of points (px, py) to the segment (ax, ay, bx, by)."""
    ax, ay, bx, by = seg
    dx, dy = bx - ax, by - ay
    t = np.minimum(np.maximum(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0), 1.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


class _Canvas:
    """Occupancy of one image being generated, at `scale` x the output resolution."""

    def __init__(self, p: PathfinderParams, margin: float) -> None:
        self.p = p
        self.scale = p.antialias_scale
        self.side = p.resolution * self.scale
        self.blocked = np.zeros((self.side, self.side), dtype=bool)
        self.margin = margin
        # Centre lines stay this far apart, so stroke edges are at least `margin` apart.
        self.clearance = p.paddle_thickness + margin
        self.lo = p.padding
        self.hi = p.resolution - p.padding
        # Points checked for a next paddle: from just past the current tip to the new tip.
        step = p.paddle_length + margin
        self.steps = np.linspace(0.0, step, max(4, int(math.ceil(step * self.scale * 2)) + 1))[1:]

    def _box(
        self, seg: tuple[float, float, float, float], reach: float
    ) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        s = self.scale
        x0 = max(int(math.floor((min(seg[0], seg[2]) - reach) * s)), 0)
        x1 = min(int(math.ceil((max(seg[0], seg[2]) + reach) * s)) + 1, self.side)
        y0 = max(int(math.floor((min(seg[1], seg[3]) - reach) * s)), 0)
        y1 = min(int(math.ceil((max(seg[1], seg[3]) + reach) * s)) + 1, self.side)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        return slice(y0, y1), slice(x0, x1), (xs + 0.5) / s, (ys + 0.5) / s

    def commit(self, seg: tuple[float, float, float, float], reach: float | None = None) -> None:
        """Mark the neighbourhood of `seg` (a point when both ends coincide) as taken."""
        reach = self.clearance if reach is None else reach
        rows, cols, px, py = self._box(seg, reach)
        self.blocked[rows, cols] |= _segment_distance(px, py, seg) < reach

    def free(
        self, xs: np.ndarray, ys: np.ndarray, extra: list[tuple[float, float, float, float]]
    ) -> np.ndarray:
        """[K] whether each candidate's points [K, P] are inside the border and clear of everything."""
        inside = (xs >= self.lo) & (xs <= self.hi) & (ys >= self.lo) & (ys <= self.hi)
        ix = np.clip((xs * self.scale).astype(np.int64), 0, self.side - 1)
        iy = np.clip((ys * self.scale).astype(np.int64), 0, self.side - 1)
        ok = inside & ~self.blocked[iy, ix]
        for seg in extra:
            ok &= _segment_distance(xs, ys, seg) >= self.clearance
        return ok.all(axis=1)


def _grow(
    canvas: _Canvas,
    rng: np.random.Generator,
    seed_seg: tuple[float, float, float, float],
    angle: float,
    n_paddles: int,
    extra: list[tuple[float, float, float, float]],
) -> list[tuple[float, float, float, float]] | None:
    """Extend a snake from its seed paddle to `n_paddles`; None when it gets stuck.

    The snake's own newest paddle is not yet in `canvas.blocked` (the next one starts right next
    to it); everything older is committed as soon as a new paddle is placed.
    """
    p = canvas.p
    t = canvas.steps
    max_turn = math.pi / 2
    snake = [seed_seg]
    for _ in range(n_paddles - 1):
        tip_x, tip_y = snake[-1][2], snake[-1][3]
        turns = rng.uniform(-max_turn, max_turn, CANDIDATE_TURNS)
        angles = angle + turns
        ux, uy = np.cos(angles), np.sin(angles)
        xs = tip_x + ux[:, None] * t[None, :]
        ys = tip_y + uy[:, None] * t[None, :]
        weights = np.cos(np.minimum(np.abs(turns) * p.continuity, math.pi / 2)) ** 2
        weights = weights * canvas.free(xs, ys, extra)
        total = weights.sum()
        if total <= 1e-12:
            return None
        k = int(rng.choice(CANDIDATE_TURNS, p=weights / total))
        angle = float(angles[k])
        start_x, start_y = tip_x + ux[k] * canvas.margin, tip_y + uy[k] * canvas.margin
        canvas.commit(snake[-1])
        snake.append((start_x, start_y, start_x + ux[k] * p.paddle_length, start_y + uy[k] * p.paddle_length))
    return snake


def _seed(
    canvas: _Canvas,
    rng: np.random.Generator,
    x: float,
    y: float,
    extra: list[tuple[float, float, float, float]],
) -> tuple[tuple[float, float, float, float], float] | None:
    """A seed paddle starting at (x, y) in a random direction that is free; None if none is."""
    for _ in range(8):
        angle = float(rng.uniform(-math.pi, math.pi))
        seg = (
            x,
            y,
            x + math.cos(angle) * canvas.p.paddle_length,
            y + math.sin(angle) * canvas.p.paddle_length,
        )
        t = np.linspace(0.0, 1.0, 6)
        xs = (seg[0] + (seg[2] - seg[0]) * t)[None, :]
        ys = (seg[1] + (seg[3] - seg[1]) * t)[None, :]
        if canvas.free(xs, ys, extra)[0]:
            return seg, angle
    return None


def _matched_origins(p: PathfinderParams, pair: tuple[list, list], margin: float) -> list[int]:
    """The target snakes whose starting tip may carry the first marker: those from which both far
    tips lie (almost) equally far, and no farther than a straight snake reaches.

    The layout is drawn the same way for both labels and the second marker goes on the own far tip
    (label 1) or the other one (label 0), so equal distances keep the marker distance (and with it
    every statistic of where the bright pixels are) from telling the labels apart. The far tip of
    the other snake could also lie farther than any snake reaches, which only label 0 could show:
    the reach bound leaves such layouts out (it matters for short snakes).
    """
    far_tips = [(snake[-1][2], snake[-1][3]) for snake in pair]
    reach = p.contour_length * p.paddle_length + (p.contour_length - 1) * margin
    origins = []
    for o in (0, 1):
        distances = [math.dist(pair[o][0][:2], tip) for tip in far_tips]
        if (
            abs(distances[0] - distances[1]) <= p.marker_distance_tolerance
            and max(distances) <= reach - p.marker_distance_tolerance
        ):
            origins.append(o)
    return origins


def _target_pair(canvas: _Canvas, rng: np.random.Generator) -> tuple[tuple[list, list], list[int]] | None:
    """Two target snakes whose markers cannot give the label away, and their `_matched_origins`."""
    p = canvas.p
    border = min(
        max(p.padding, 2 * p.seed_distance), (p.resolution - 1) / 2
    )  # LRA: starts away from the edges
    x, y = rng.uniform(border, p.resolution - border, 2)
    first = _seed(canvas, rng, float(x), float(y), [])
    if first is None:
        return None
    phi = rng.uniform(-math.pi, math.pi)
    second = _seed(
        canvas, rng, x + p.seed_distance * math.cos(phi), y + p.seed_distance * math.sin(phi), [first[0]]
    )
    if second is None:
        return None
    snake_a = _grow(canvas, rng, first[0], first[1], p.contour_length, extra=[second[0]])
    if snake_a is None:
        return None
    canvas.commit(snake_a[-1])
    snake_b = _grow(canvas, rng, second[0], second[1], p.contour_length, extra=[])
    if snake_b is None:
        return None
    canvas.commit(snake_b[-1])
    if _markers_touch_other_snake(p, snake_a, snake_b):
        return None
    origins = _matched_origins(p, (snake_a, snake_b), canvas.margin)
    return ((snake_a, snake_b), origins) if origins else None


def _markers_touch_other_snake(p: PathfinderParams, snake_a: list, snake_b: list) -> bool:
    """Whether a marker on a tip of one target snake would touch the other (an ambiguous image)."""
    reach = p.marker_radius + p.paddle_thickness / 2
    for own, other in ((snake_a, snake_b), (snake_b, snake_a)):
        for tip in ((own[0][0], own[0][1]), (own[-1][2], own[-1][3])):
            tx, ty = np.array([tip[0]]), np.array([tip[1]])
            if min(float(_segment_distance(tx, ty, seg)[0]) for seg in other) < reach:
                return True
    return False


def _distractor(canvas: _Canvas, rng: np.random.Generator) -> list | None:
    p = canvas.p
    for _ in range(4):
        x, y = rng.uniform(p.padding, p.resolution - p.padding, 2)
        seed = _seed(canvas, rng, float(x), float(y), [])
        if seed is None:
            continue
        snake = _grow(canvas, rng, seed[0], seed[1], p.distractor_length, extra=[])
        if snake is not None:
            canvas.commit(snake[-1])
            return snake
    return None


def _render(
    p: PathfinderParams,
    strokes: list[tuple[tuple[float, float, float, float], float]],
    discs: list[tuple[float, float]],
) -> np.ndarray:
    """Strokes and discs drawn at `antialias_scale` x the resolution, then either Lanczos-downsampled
    (antialiased) or, with `binary`, made background / stroke / marker (255) by covered fraction;
    with `rescale_to_max` the brightest pixel becomes 255, else values above 1 are clipped."""
    from PIL import Image

    s = p.antialias_scale
    side = p.resolution * s
    canvas = np.zeros((side, side), dtype=np.float32)
    stroke_cover = np.zeros((side, side), dtype=np.float32)
    stroke_value = np.zeros((side, side), dtype=np.float32)
    marker_cover = np.zeros((side, side), dtype=np.float32)
    ys, xs = np.mgrid[0:side, 0:side]
    cx, cy = (xs + 0.5) / s, (ys + 0.5) / s
    half = p.paddle_thickness / 2
    for seg, intensity in strokes:
        # Coverage falls off linearly over one supersampled pixel at the stroke edge.
        x0, x1 = (
            int(max(min(seg[0], seg[2]) - half - 1, 0) * s),
            int(min(max(seg[0], seg[2]) + half + 1, p.resolution) * s) + 1,
        )
        y0, y1 = (
            int(max(min(seg[1], seg[3]) - half - 1, 0) * s),
            int(min(max(seg[1], seg[3]) + half + 1, p.resolution) * s) + 1,
        )
        box = (slice(y0, y1), slice(x0, x1))
        d = _segment_distance(cx[box], cy[box], seg)
        cover = np.clip((half - d) * s + 0.5, 0.0, 1.0)
        np.maximum(canvas[box], cover * intensity, out=canvas[box])
        np.maximum(stroke_cover[box], cover, out=stroke_cover[box])
        np.maximum(stroke_value[box], np.where(cover >= 0.5, intensity, 0.0), out=stroke_value[box])
    for x, y in discs:
        d = np.hypot(cx - x, cy - y)
        np.maximum(marker_cover, np.clip((p.marker_radius - d) * s + 0.5, 0.0, 1.0), out=marker_cover)
    if p.binary:
        blocks = (p.resolution, s, p.resolution, s)
        markers = marker_cover.reshape(blocks).mean(axis=(1, 3)) >= p.binary_coverage
        stroked = stroke_cover.reshape(blocks).mean(axis=(1, 3)) >= p.binary_coverage
        value = stroke_value.reshape(blocks).max(axis=(1, 3))
        image = np.where(markers, 1.0, np.where(stroked, value, 0.0))
        if p.rescale_to_max:
            return _rescale_to_max(image)
        return np.rint(image * 255.0).astype(np.uint8)
    np.maximum(canvas, marker_cover, out=canvas)
    resized = Image.fromarray(canvas, mode="F").resize((p.resolution, p.resolution), Image.Resampling.LANCZOS)
    if p.rescale_to_max:
        return _rescale_to_max(np.asarray(resized))
    return np.clip(np.rint(np.asarray(resized) * 255.0), 0, 255).astype(np.uint8)


def _rescale_to_max(image: np.ndarray) -> np.ndarray:
    """uint8 image whose brightest pixel is 255: scipy.misc.imsave's byte scaling of a float image
    ((x - min) * 255 / (max - min), rounded half up) with min 0, the black background; the Lanczos
    undershoot below 0, which the original's per-paddle uint8 resizing never had, is clipped first."""
    image = np.clip(np.asarray(image, dtype=np.float64), 0.0, None)
    peak = float(image.max())
    if peak <= 0.0:
        return np.zeros(image.shape, dtype=np.uint8)
    return np.floor(image * (255.0 / peak) + 0.5).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Layout:
    """The geometry of one image: snakes (targets first) as paddle lists, the two marker centres."""

    snakes: list[list[tuple[float, float, float, float]]]
    markers: list[tuple[float, float]]
    margin: float


def make_layout(p: PathfinderParams, label: int, rng: np.random.Generator) -> Layout:
    """Place the two target snakes, the markers for `label` and the distractors."""
    for _ in range(MAX_IMAGE_ATTEMPTS):
        margin = float(rng.choice(p.paddle_margin))
        canvas = _Canvas(p, margin)
        found = _target_pair(canvas, rng)
        if found is None:
            continue
        # Either snake's start may carry the first marker; one that qualifies is drawn (the label
        # plays no part).
        pair, origins = found
        origin = origins[int(rng.integers(len(origins)))]
        far = origin if label == 1 else 1 - origin
        markers = [(pair[origin][0][0], pair[origin][0][1]), (pair[far][-1][2], pair[far][-1][3])]
        for own in pair:  # keep distractors away from every target tip
            for x, y in ((own[0][0], own[0][1]), (own[-1][2], own[-1][3])):
                canvas.commit((x, y, x, y), reach=p.marker_radius + canvas.clearance)
        snakes = list(pair)
        for _ in range(p.num_distractors):
            snake = _distractor(canvas, rng)
            if snake is not None:
                snakes.append(snake)
        return Layout(snakes, markers, margin)
    raise ValueError(
        f"could not place two target snakes in {MAX_IMAGE_ATTEMPTS} attempts with {p}; "
        "use a larger resolution or shorter contours"
    )


def make_image(p: PathfinderParams, label: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One [res, res] uint8 image with the given label, and the paddle margin used."""
    layout = make_layout(p, label, rng)
    return render_layout(p, layout, rng), layout.margin


def render_layout(p: PathfinderParams, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """The [res, res] uint8 image of `layout` (paddle intensities drawn from `rng`)."""
    strokes = []
    for snake in layout.snakes:
        for seg in snake:
            contrast = float(rng.choice(p.paddle_contrast))
            intensity = p.snake_contrast * contrast
            # Kept above 1 when the image is rescaled to its maximum (LRA's strokes outshine the markers).
            strokes.append((seg, intensity if p.rescale_to_max else min(1.0, intensity)))
    return _render(p, strokes, layout.markers)


# ---------------------------------------------------------------------------------------------
# Writing the official layout
# ---------------------------------------------------------------------------------------------


def split_labels(p: PathfinderParams, seed: int) -> np.ndarray:
    """Labels of all images in order (train, val, test), exactly balanced within each split."""
    parts = []
    for i, n in enumerate(p.sizes().values()):
        labels = np.arange(n) % 2
        np.random.default_rng([seed, 7919, i]).shuffle(labels)
        parts.append(labels)
    return np.concatenate(parts).astype(np.int64)


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def _write_chunk(
    folder: str, p: PathfinderParams, seed: int, batch: int, start: int, labels: list[int]
) -> str:
    """Render and write images start.. of imgs/<batch>; return their metadata lines."""
    from PIL import Image

    sub = f"imgs/{batch}"
    out = Path(folder) / sub
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, label in enumerate(labels, start=start):
        image, margin = make_image(p, label, _image_rng(seed, batch * p.images_per_batch + n))
        name = f"sample_{n}.png"
        Image.fromarray(image, mode="L").save(out / name)
        lines.append(
            f"{sub} {name} {n} {label} {p.continuity} {p.contour_length} {p.distractor_length} "
            f"{p.paddle_length} {p.paddle_thickness} {margin:g} {len(p.paddle_contrast)}\n"
        )
    return "".join(lines)


def write_pathfinder(
    out_dir: str | os.PathLike[str], p: PathfinderParams, seed: int = 0, workers: int = 0
) -> Path:
    """Generate `<out_dir>/pathfinder<res>/<folder>/` in the official layout; returns that folder.

    Images of split `train` come first, then `val`, then `test` (reading the folder back with
    LRA's 80/10/10 slicing gives the same splits when the sizes are in that ratio). Each metadata
    file is written atomically once all images of its batch are written.
    """
    p.check()
    folder = Path(out_dir) / p.folder()
    if (folder / "metadata").exists():
        # Batches of an earlier, larger set would silently mix with the new one.
        raise ValueError(f"{folder} already holds Pathfinder data; delete it or choose another output folder")
    marker = {
        "task": p.folder().split("/")[0],
        "seed": seed,
        "params": params_description(p),
        "complete": False,
    }
    atomic_write_json(folder / GENERATED_MARKER, marker)  # until the end: an interrupted set is refused
    labels = split_labels(p, seed).tolist()
    per = p.images_per_batch
    # Work units of at most CHUNK images, so that small sets also keep every worker busy.
    units = [
        (b, start, labels[b * per + start : min(b * per + start + CHUNK, (b + 1) * per, len(labels))])
        for b in range(-(-len(labels) // per))
        for start in range(0, min(per, len(labels) - b * per), CHUNK)
    ]
    pending = {b: sum(1 for u in units if u[0] == b) for b, _, _ in units}
    texts: dict[int, list[str]] = {b: [] for b in pending}
    workers = workers or default_workers()
    with progress(total=len(labels), desc=f"generating {p.folder()}", unit=" img") as bar:

        def finished(unit: tuple[int, int, list[int]], text: str) -> None:
            b = unit[0]
            texts[b].append(text)
            pending[b] -= 1
            if pending[b] == 0:
                atomic_write_text(folder / "metadata" / f"{b}.npy", "".join(texts.pop(b)))
            bar.update(len(unit[2]))

        if workers <= 1 or len(units) == 1:
            for unit in units:
                finished(unit, _write_chunk(str(folder), p, seed, *unit))
        else:
            with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
                futures = [pool.submit(_write_chunk, str(folder), p, seed, *unit) for unit in units]
                for unit, future in zip(units, futures, strict=True):
                    finished(unit, future.result())
    atomic_write_json(folder / GENERATED_MARKER, {**marker, "complete": True})
    return folder
