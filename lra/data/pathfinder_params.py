"""The settings of the offline Pathfinder / Path-X generator (`lra.data.generate_pathfinder`) and
its named variants.

`PathfinderParams` holds every setting (each field's help text is its `lra data generate` option);
`PATHFINDER_VARIANTS` / `PATHX_VARIANTS` the named ones ("lra" = LRA's hard split:
`curv_contour_length_14` at 32x32 and 128x128); `pathfinder_params` picks a variant and applies
overrides; `params_description` is what the generated data are a function of (it enters their
identity). Lengths are in output pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PathfinderParams:
    """Every setting of the Pathfinder generator (defaults: LRA's Pathfinder-32, hard split)."""

    resolution: int = field(default=32, metadata={"help": "image side in pixels"})
    contour_length: int = field(default=14, metadata={"help": "paddles per target snake"})
    distractor_length: int = field(default=4, metadata={"help": "paddles per distractor snake"})
    num_distractors: int = field(default=5, metadata={"help": "distractor snakes (fewer if they do not fit)"})
    paddle_length: float = field(default=2.0, metadata={"help": "length of one paddle"})
    paddle_thickness: float = field(default=0.5, metadata={"help": "stroke width"})
    paddle_margin: tuple[float, ...] = field(
        default=(1.0,), metadata={"help": "gap between paddles and clearance, one drawn per image"}
    )
    seed_distance: float = field(
        default=7.0, metadata={"help": "distance between the two target snakes' starts"}
    )
    marker_radius: float = field(default=1.5, metadata={"help": "radius of the two markers"})
    marker_distance_tolerance: float = field(
        default=1.0,
        metadata={"help": "largest difference between the two far tips' distances to the first marker"},
    )
    continuity: float = field(
        default=1.0, metadata={"help": "straightness: turn weight cos(min(turn*c, pi/2))^2"}
    )
    padding: float = field(default=1.0, metadata={"help": "empty border"})
    antialias_scale: int = field(default=2, metadata={"help": "supersampling factor of the rendering"})
    binary: bool = field(
        default=False,
        metadata={
            "help": "draw each pixel as background, stroke or marker (covered at least "
            "`binary_coverage`) instead of antialiased"
        },
    )
    binary_coverage: float = field(
        default=0.25, metadata={"help": "covered fraction that makes a pixel a stroke or marker (binary)"}
    )
    snake_contrast: float = field(
        default=2.0, metadata={"help": "stroke intensity factor (times the paddle's contrast)"}
    )
    paddle_contrast: tuple[float, ...] = field(
        default=(0.75,), metadata={"help": "per-paddle intensity factors, one drawn per paddle"}
    )
    rescale_to_max: bool = field(
        default=True,
        metadata={
            "help": "scale each image so that its brightest pixel is 255 (the original generator's "
            "scipy.misc.imsave); otherwise intensities above 1 are clipped at white"
        },
    )
    n_train: int = field(default=160_000, metadata={"help": "training images"})
    n_val: int = field(default=20_000, metadata={"help": "validation images"})
    n_test: int = field(default=20_000, metadata={"help": "test images"})
    images_per_batch: int = field(default=1_000, metadata={"help": "images per imgs/<batch> folder"})

    def check(self) -> None:
        problems = []
        if self.resolution < 8:
            problems.append(f"resolution must be >= 8, got {self.resolution}")
        if self.contour_length < 1 or self.distractor_length < 1 or self.num_distractors < 0:
            problems.append("contour_length and distractor_length must be >= 1, num_distractors >= 0")
        for name in (
            "paddle_length",
            "paddle_thickness",
            "seed_distance",
            "marker_radius",
            "continuity",
            "marker_distance_tolerance",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.padding < 0 or self.antialias_scale < 1 or self.snake_contrast <= 0:
            problems.append("padding must be >= 0, antialias_scale >= 1 and snake_contrast > 0")
        if not 0 < self.binary_coverage <= 1:
            problems.append(f"binary_coverage must be in (0, 1], got {self.binary_coverage}")
        if not self.paddle_margin or min(self.paddle_margin) <= 0:
            problems.append(f"paddle_margin must be positive values, got {self.paddle_margin}")
        if not self.paddle_contrast or min(self.paddle_contrast) <= 0:
            problems.append(f"paddle_contrast must be positive values, got {self.paddle_contrast}")
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.n_train + self.n_val + self.n_test == 0:
            problems.append("split sizes must be >= 0 and not all 0")
        if self.images_per_batch < 1:
            problems.append("images_per_batch must be >= 1")
        if 2 * (self.padding + self.seed_distance) >= self.resolution:
            problems.append(
                f"seed_distance {self.seed_distance} and padding {self.padding} leave no room in a "
                f"{self.resolution}x{self.resolution} image"
            )
        if problems:
            raise ValueError("bad Pathfinder parameters: " + "; ".join(problems))

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def folder(self) -> str:
        """`pathfinder<res>/<difficulty folder>` as in the official archive."""
        named = {6: "curv_baseline"}
        return f"pathfinder{self.resolution}/{named.get(self.contour_length, f'curv_contour_length_{self.contour_length}')}"


_EASY = PathfinderParams(  # 16x16 (256 tokens), three-paddle snakes, one distractor.
    resolution=16,
    contour_length=3,
    distractor_length=2,
    num_distractors=1,
    paddle_length=2.0,
    paddle_thickness=0.75,
    paddle_margin=(1.0,),
    seed_distance=4.0,
    marker_radius=1.5,
    marker_distance_tolerance=0.5,
    continuity=1.0,
    snake_contrast=1.0,
    paddle_contrast=(1.0,),
    rescale_to_max=False,
    n_train=8_000,
    n_val=1_000,
    n_test=1_000,
)

# Fields added after data were generated with the variants, with the value that reproduces the
# images made before them: generator descriptions (hence data identities and folders) omit a field
# at that value, so existing generated data keep their identity.
FIELDS_ADDED_LATER: dict[str, Any] = {"rescale_to_max": False}

PATHFINDER_VARIANTS: dict[str, PathfinderParams] = {
    "lra": PathfinderParams(),
    "easy": _EASY,
    # The same task (are the two markers on one contour?) at a size a CPU learns in a few hundred
    # steps: two-paddle snakes, two distractors, strokes dimmer than the markers, and three pixel
    # values (background, stroke, marker) instead of antialiased ones, so that a token's value
    # says what it is and the model only has to learn where things are.
    "quick": dataclasses.replace(
        _EASY,
        contour_length=2,
        distractor_length=2,
        num_distractors=2,
        marker_distance_tolerance=0.25,
        snake_contrast=0.5,
        antialias_scale=4,
        binary=True,
    ),
}

PATHX_VARIANTS: dict[str, PathfinderParams] = {
    "lra": PathfinderParams(
        resolution=128,
        contour_length=14,
        distractor_length=4,
        num_distractors=8,
        paddle_length=5.0,
        paddle_thickness=1.5,
        paddle_margin=(2.0, 3.0),
        seed_distance=20.0,
        marker_radius=3.0,
        marker_distance_tolerance=4.0,  # 1.0 at 32x32, scaled to 128x128
        continuity=1.8,
        snake_contrast=0.9,
        paddle_contrast=(1.0,),
    ),
    # 32x32 (1,024 tokens), 5-paddle contours, 2 distractors: exercises the Path-X pipeline on a CPU.
    "easy": PathfinderParams(
        resolution=32,
        contour_length=5,
        distractor_length=2,
        num_distractors=2,
        paddle_length=2.0,
        paddle_thickness=0.75,
        paddle_margin=(1.0,),
        seed_distance=5.0,
        marker_radius=1.5,
        continuity=1.0,
        snake_contrast=1.0,
        paddle_contrast=(1.0,),
        rescale_to_max=False,
        n_train=8_000,
        n_val=1_000,
        n_test=1_000,
    ),
}


VARIANTS: dict[str, dict[str, PathfinderParams]] = {
    "pathfinder": PATHFINDER_VARIANTS,
    "pathx": PATHX_VARIANTS,
}


def params_description(p: PathfinderParams) -> dict[str, Any]:
    """The settings as a dict, without the `FIELDS_ADDED_LATER` that hold their earlier behaviour."""
    return {k: v for k, v in dataclasses.asdict(p).items() if FIELDS_ADDED_LATER.get(k, object()) != v}


def pathfinder_params(task: str, variant: str, **overrides: Any) -> PathfinderParams:
    """The named variant of `task` ("pathfinder" or "pathx") with `overrides` (None ignored)."""
    if task not in VARIANTS:
        raise ValueError(f"task {task!r} has no Pathfinder generator; valid: {', '.join(VARIANTS)}")
    table = VARIANTS[task]
    if variant not in table:
        raise ValueError(f"unknown {task} generator {variant!r}; valid: {', '.join(table)}")
    params = dataclasses.replace(table[variant], **{k: v for k, v in overrides.items() if v is not None})
    params.check()
    return params
