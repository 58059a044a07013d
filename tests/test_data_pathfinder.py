"""Pathfinder generator: PNG format and layout, label balance, determinism, geometry, reader."""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lra.data import generate_pathfinder as gp
from lra.data import lra_release

SMALL = dataclasses.replace(
    gp.PATHFINDER_VARIANTS["easy"], n_train=40, n_val=6, n_test=6, images_per_batch=20
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gp.write_pathfinder(tmp_path_factory.mktemp("pf"), SMALL, seed=4, workers=2)


def test_official_layout_png_format_and_metadata(written: Path):
    assert written.as_posix().endswith("pathfinder16/curv_contour_length_3")
    metas = sorted((written / "metadata").glob("*.npy"))
    assert [m.name for m in metas] == ["0.npy", "1.npy", "2.npy"]  # 52 images, 20 per batch
    lines = [line.split() for m in metas for line in m.read_text().splitlines()]
    assert len(lines) == 52 and all(len(f) == 11 for f in lines)
    assert lines[0][:4] == ["imgs/0", "sample_0.png", "0", lines[0][3]]
    assert lines[20][:3] == ["imgs/1", "sample_0.png", "0"]
    for fields in lines[:10]:
        with Image.open(written / fields[0] / fields[1]) as image:
            assert image.format == "PNG" and image.mode == "L" and image.size == (16, 16)
            pixels = np.asarray(image)
        assert pixels.max() > 200, "markers are drawn bright"
        assert 0.03 < (pixels > 64).mean() < 0.6, "strokes on a black background"


def test_labels_exactly_balanced_per_split(written: Path):
    entries = lra_release.read_pathfinder_index(written)
    counts = (SMALL.n_train, SMALL.n_val, SMALL.n_test)
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        labels = [e.label for e in lra_release.split_entries(entries, split, counts)]
        assert len(labels) == n and sum(labels) == n // 2


def test_deterministic_and_independent_of_workers(written: Path, tmp_path: Path):
    again = gp.write_pathfinder(tmp_path, SMALL, seed=4, workers=1)
    with pytest.raises(ValueError, match="already holds Pathfinder data"):
        gp.write_pathfinder(tmp_path, SMALL, seed=5, workers=1)
    for name in ("imgs/0/sample_3.png", "imgs/2/sample_5.png", "metadata/1.npy"):
        assert (again / name).read_bytes() == (written / name).read_bytes()
    other = gp.make_image(SMALL, 1, np.random.default_rng([5, 3]))[0]
    assert not np.array_equal(other, gp.make_image(SMALL, 1, np.random.default_rng([4, 3]))[0])


def snake_ends(snake):
    return (snake[0][0], snake[0][1]), (snake[-1][2], snake[-1][3])


def test_target_snakes_geometry():
    """Targets have contour_length paddles of paddle_length, gaps of margin, turns <= 90 degrees,
    start seed_distance apart, and never come closer than the clearance to each other."""
    p = gp.PATHFINDER_VARIANTS["lra"]
    rng = np.random.default_rng(0)
    made = 0
    for _ in range(400):  # most pairs fail the marker distance match
        canvas = gp._Canvas(p, 1.0)
        found = gp._target_pair(canvas, rng)
        if found is None:
            continue
        pair, _ = found
        made += 1
        a, b = pair
        assert len(a) == len(b) == p.contour_length
        assert math.dist(snake_ends(a)[0], snake_ends(b)[0]) == pytest.approx(p.seed_distance)
        for snake in pair:
            for seg, nxt in zip(snake, snake[1:], strict=False):
                assert math.dist(seg[:2], seg[2:]) == pytest.approx(p.paddle_length)
                assert math.dist(seg[2:], nxt[:2]) == pytest.approx(1.0)
                u = np.subtract(seg[2:], seg[:2])
                v = np.subtract(nxt[2:], nxt[:2])
                assert float(u @ v) >= -1e-9, "turn of more than 90 degrees"
            pts = np.array([s[:2] for s in snake] + [s[2:] for s in snake])
            assert pts.min() >= p.padding - 1e-9 and pts.max() <= p.resolution - p.padding + 1e-9
        # Densely sampled centre lines of the two snakes stay apart (up to the raster step).
        ta = np.linspace(0, 1, 9)
        pa = np.concatenate([np.outer(1 - ta, s[:2]) + np.outer(ta, s[2:]) for s in a])
        pb = np.concatenate([np.outer(1 - ta, s[:2]) + np.outer(ta, s[2:]) for s in b])
        gap = np.min(np.linalg.norm(pa[:, None] - pb[None], axis=2))
        assert gap > canvas.clearance - 1.0 / p.antialias_scale
    assert made >= 10


@pytest.mark.parametrize(
    ("task", "variant"), [("pathfinder", "lra"), ("pathfinder", "easy"), ("pathx", "easy")]
)
def test_markers_follow_the_label(task, variant):
    """Label 1: the markers are the two ends of one target snake; label 0: ends of different
    target snakes. Markers are rendered bright at their centres; distractors keep clear of them."""
    p = gp.pathfinder_params(task, variant)
    for index in range(12):
        label = index % 2
        layout = gp.make_layout(p, label, np.random.default_rng([9, index]))
        ends = [snake_ends(s) for s in layout.snakes[:2]]
        first, second = layout.markers
        owner_first = [i for i in (0, 1) if ends[i][0] == first]
        owner_second = [i for i in (0, 1) if ends[i][1] == second]
        assert len(owner_first) == 1 and len(owner_second) == 1
        assert (owner_first[0] == owner_second[0]) == (label == 1)
        for distractor in layout.snakes[2:]:
            assert len(distractor) == p.distractor_length
            for seg in distractor:
                for x, y in layout.markers:
                    d = gp._segment_distance(np.array([x]), np.array([y]), seg)[0]
                    assert d > p.marker_radius
        image = gp._render(p, [], layout.markers)
        for x, y in layout.markers:
            assert image[int(y), int(x)] > 100


@pytest.mark.parametrize("variant", ["quick", "easy", "lra"])
def test_marker_distance_is_matched_and_within_a_straight_snakes_reach(variant):
    """The same random stream gives the same layout for both labels, only the second marker moves:
    its two places lie equally far from the first marker (within the tolerance), and no farther than
    a straight target snake reaches, so short snakes cannot give label 0 away by a long distance."""
    p = gp.pathfinder_params("pathfinder", variant)
    for index in range(40):
        one = gp.make_layout(p, 1, np.random.default_rng([7, index]))
        zero = gp.make_layout(p, 0, np.random.default_rng([7, index]))
        assert one.snakes == zero.snakes and one.markers[0] == zero.markers[0]
        reach = p.contour_length * p.paddle_length + (p.contour_length - 1) * one.margin
        d1, d0 = math.dist(*one.markers), math.dist(*zero.markers)
        assert abs(d1 - d0) <= p.marker_distance_tolerance + 1e-9
        assert max(d1, d0) <= reach - p.marker_distance_tolerance + 1e-9


def test_binary_rendering_draws_background_stroke_and_marker_pixels_only():
    """`binary` (the `quick` variant): every pixel is 0, the stroke value or 255; marker centres are
    255 and every paddle has a stroke pixel next to its midpoint."""
    p = gp.PATHFINDER_VARIANTS["quick"]
    assert p.binary and p.paddle_contrast == (1.0,)
    stroke = round(255 * p.snake_contrast)
    for index in range(8):
        rng = np.random.default_rng([5, index])
        layout = gp.make_layout(p, index % 2, rng)
        image = gp.render_layout(p, layout, rng)
        assert set(np.unique(image).tolist()) <= {0, stroke, 255}
        for x, y in layout.markers:
            assert image[int(y), int(x)] == 255
        for snake in layout.snakes:
            for seg in snake:
                mx, my = int((seg[0] + seg[2]) / 2), int((seg[1] + seg[3]) / 2)
                assert (image[max(my - 1, 0) : my + 2, max(mx - 1, 0) : mx + 2] == stroke).any()


def _bright_pixel_features(image: np.ndarray, markers: list) -> dict[str, float]:
    """Global statistics of an image that need no path tracing: the marker distance, the total
    intensity, and for several brightness thresholds the count, spread (root of the summed
    coordinate variances), bounding-box diagonal and farthest pair distance of the pixels above it."""
    (x0, y0), (x1, y1) = markers
    out = {"marker distance": math.hypot(x1 - x0, y1 - y0), "intensity": float(image.sum())}
    for threshold in (32, 96, 160, 224):
        ys, xs = np.nonzero(image > threshold)
        if len(xs) == 0:
            out.update({f"{name} >{threshold}": 0.0 for name in ("count", "spread", "bbox", "farthest")})
            continue
        points = np.stack([xs, ys], axis=1).astype(np.float64)
        pairwise = np.linalg.norm(points[:, None] - points[None], axis=2)
        out[f"count >{threshold}"] = float(len(xs))
        out[f"spread >{threshold}"] = math.sqrt(xs.var() + ys.var())
        out[f"bbox >{threshold}"] = math.hypot(np.ptp(xs), np.ptp(ys))
        out[f"farthest >{threshold}"] = float(pairwise.max())
    return out


def _one_threshold_accuracy(fit_x, fit_y, test_x, test_y) -> float:
    """Held-out accuracy of the best rule `label = (x > t)` or `label = (x <= t)` fitted on `fit`."""
    values = np.unique(fit_x)
    thresholds = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2])
    above = fit_x[None, :] > thresholds[:, None]
    accuracy = (above == fit_y[None, :]).mean(axis=1)
    best = int(np.argmax(np.maximum(accuracy, 1 - accuracy)))
    flip = accuracy[best] < 0.5
    predicted = (test_x > thresholds[best]) ^ flip
    return float((predicted == test_y).mean())


def _features_of_image(task: str, variant: str, index: int) -> dict[str, float]:
    """The global features of image `index` (label: index % 2) of the variant."""
    p = gp.pathfinder_params(task, variant)
    rng = np.random.default_rng([11, index])
    layout = gp.make_layout(p, index % 2, rng)
    return _bright_pixel_features(gp.render_layout(p, layout, rng), layout.markers)


@pytest.mark.parametrize(
    ("task", "variant", "n_images"),
    [
        ("pathfinder", "quick", 1000),
        pytest.param("pathfinder", "easy", 1000, marks=pytest.mark.slow),
        pytest.param("pathx", "easy", 1000, marks=pytest.mark.slow),
        pytest.param("pathfinder", "lra", 1000, marks=pytest.mark.slow),
    ],
)
def test_no_global_cue_gives_the_label_away(task, variant, n_images):
    """No one-threshold rule on one global feature of the bright pixels, fitted on half of the
    images, scores more than 60% on the other half (chance: 50%; two standard errors: 4.5%)."""
    # Each image depends on its index alone, so the cores share the (pure Python) drawing.
    features = functools.partial(_features_of_image, task, variant)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        rows = list(pool.map(features, range(n_images), chunksize=50))
    y = np.arange(n_images) % 2 == 1
    half = n_images // 2
    scores = {}
    for name in rows[0]:
        x = np.array([row[name] for row in rows])
        scores[name] = _one_threshold_accuracy(x[:half], y[:half], x[half:], y[half:])
    worst = max(scores, key=scores.get)
    assert scores[worst] <= 0.60, (
        f"{task}/{variant}: '{worst}' alone predicts the label ({scores[worst]:.0%})"
    )


def test_lra_variants_match_reference_parameters():
    pf, px = gp.PATHFINDER_VARIANTS["lra"], gp.PATHX_VARIANTS["lra"]
    assert (pf.resolution, pf.contour_length, pf.paddle_margin, pf.seed_distance) == (32, 14, (1.0,), 7.0)
    assert pf.distractor_length == 14 // 3 and pf.num_distractors == 20 // (14 // 3)
    assert (px.resolution, px.paddle_margin, px.seed_distance, px.num_distractors) == (
        128,
        (2.0, 3.0),
        20.0,
        35 // 4,
    )
    assert pf.folder() == "pathfinder32/curv_contour_length_14"
    assert px.folder() == "pathfinder128/curv_contour_length_14"


def test_bad_parameters_are_reported():
    with pytest.raises(ValueError, match="leave no room"):
        gp.pathfinder_params("pathfinder", "easy", seed_distance=9.0)
    with pytest.raises(ValueError, match="unknown pathx generator 'hard'; valid: lra, easy"):
        gp.pathfinder_params("pathx", "hard")
    with pytest.raises(ValueError, match="could not place two target snakes"):
        gp.make_image(
            gp.pathfinder_params("pathfinder", "easy", contour_length=30), 1, np.random.default_rng(0)
        )


def test_reader_splits_skips_empty_and_reports_bad_files(written: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "pathfinder16" / "curv_contour_length_3"
    shutil.copytree(written, copy)
    (copy / "imgs/0/sample_1.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 1 empty PNG"):
        entries = lra_release.read_pathfinder_index(copy)
    assert len(entries) == 51
    sizes = [len(lra_release.split_entries(entries, s)) for s in ("train", "val", "test")]
    assert sizes == [41, 5, 5]  # LRA's 80 / 10 / 10 of what is left
    pixels = lra_release.read_pathfinder_images(entries[:5], 16)
    assert pixels.shape == (5, 256) and pixels.dtype == np.uint8
    with Image.open(entries[0].path) as im:
        assert np.array_equal(pixels[0], np.asarray(im).reshape(-1))

    (copy / "imgs/0/sample_2.png").write_bytes(b"not a png at all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = lra_release.read_pathfinder_index(copy)
    with pytest.raises(ValueError, match=r"sample_2\.png \(.*0\.npy:3\): unreadable PNG"):
        lra_release.read_pathfinder_images(entries[:3], 16)
    with pytest.raises(ValueError, match="expected a 32x32 image"):
        lra_release.read_pathfinder_images(entries[:1], 32)

    meta = copy / "metadata" / "1.npy"
    meta.write_text(meta.read_text() + "imgs/1 sample_99.png 99 1 1 1 1 1 1 1 1\n")
    with pytest.raises(ValueError, match=r"1\.npy:21: image .*sample_99\.png is listed but missing"):
        lra_release.read_pathfinder_index(copy)
    meta.write_text("imgs/1 sample_0.png 0 7 1 1 1 1 1 1 1\n")
    with pytest.raises(ValueError, match=r"1\.npy:1: bad label '7'"):
        lra_release.read_pathfinder_index(copy)


@pytest.mark.slow
def test_generation_speed_2000_images_32px(tmp_path: Path):
    """The generator's speed target: 2,000 Pathfinder-32 images in under a minute on two cores."""
    import time

    params = dataclasses.replace(gp.PATHFINDER_VARIANTS["lra"], n_train=200, n_val=0, n_test=0)
    start = time.perf_counter()
    gp.write_pathfinder(tmp_path, params, seed=0, workers=1)
    per_image = (time.perf_counter() - start) / 200
    assert per_image * 2000 / 2 < 60, f"{per_image * 1000:.1f} ms per image on one core"
