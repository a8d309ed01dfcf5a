"""What the benchmark uploads and how the API will behave on it: the benchmark's own processing-time distributions
(not the catalog's guesses the pipeline starts from), real images of realistic sizes, and arrival times."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mock_server.cassette import Cassette
from offline.samples import encode, mask, portrait
from picwish_visual.catalog import OPERATIONS

# Processing time per operation: median seconds and the sigma of its log. Chosen apart from the catalog's
# `typical_processing_s` (retouching 8, correction 2, inpaint 4, clothing 3, idphoto 2), so a pipeline that only
# trusts the catalog polls at the wrong moment and the benchmark shows it.
PROCESSING = {
    "idphoto": (4.5, 0.45),
    "correction": (3.5, 0.5),
    "inpaint": (7.0, 0.55),
    "retouching-collection": (5.5, 0.5),
    "clothing-segmentation": (2.5, 0.4),
}
TAIL_SHARE = 0.03  # tasks the API is slow on: 20 s and up, a Pareto tail (some past 60 s)
TAIL_MIN_S, TAIL_ALPHA, TAIL_MAX_S = 20.0, 1.2, 170.0  # under the API's 180 s limit
PROGRESS_SIGMA = 0.35  # how far a task's progress curve is from linear (log of the exponent)
SIZE_MEDIAN_MB, SIZE_SIGMA, SIZE_MIN_MB, SIZE_MAX_MB = 1.5, 0.6, 0.2, 6.0  # phone photos
BYTES_PER_PIXEL = 0.4  # of the noisy JPEGs made below, measured


@dataclass
class Upload:
    key: str
    body: bytes
    operation: str
    processing_s: float  # before the time scale
    progress_curve: float
    progress_shape: str = "power"
    progress_points: list[tuple[float, float]] | None = None  # the mock's points; None: the power curve
    at_s: float = 0.0  # when it is uploaded, from the start of the run
    masks: dict[str, bytes] = field(default_factory=dict)  # key → bytes, uploaded before the clock starts

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def processing_time(rng: random.Random, operation: str) -> float:
    if rng.random() < TAIL_SHARE:
        return min(TAIL_MAX_S, TAIL_MIN_S * rng.paretovariate(TAIL_ALPHA))
    median, sigma = PROCESSING[operation]
    return median * math.exp(rng.gauss(0, sigma))


# How a task's progress moves with its time. "power" is the mock's default family (0 while queued, then the fraction
# of the time to a power): exactly the family the pipeline's predictor fits, so a benchmark of only that shape
# would flatter it. The others are what a real API may do and the predictor does not model.
def _power(rng: random.Random) -> list[tuple[float, float]] | None:
    return None


def _stall(rng: random.Random) -> list[tuple[float, float]]:
    """Most of the progress early, then a long stall at a high percent (a publishing step that reports nothing)."""
    queue, busy_end, high = rng.uniform(0, 0.2), rng.uniform(0.35, 0.7), rng.uniform(70, 95)
    return [(queue, 0.0), (busy_end, high)]


def _late(rng: random.Random) -> list[tuple[float, float]]:
    """Little progress for a long while, then most of it at the end: a reading predicts the end far too late."""
    slow_end, low = rng.uniform(0.4, 0.75), rng.uniform(2, 15)
    return [(slow_end, low), (rng.uniform(0.9, 0.99), rng.uniform(90, 99))]


def _steps(rng: random.Random) -> list[tuple[float, float]]:
    """Progress in a few jumps (one per model stage), flat between them."""
    count = rng.randint(2, 5)
    edges = sorted(rng.uniform(0.05, 0.95) for _ in range(count))
    points, level = [], 0.0
    for i, edge in enumerate(edges):
        after = 95 * (i + 1) / count
        if not points or edge - 0.01 > points[-1][0]:
            points.append((edge - 0.01, level))
        points.append((edge, after))
        level = after
    return points


def _noisy(rng: random.Random) -> list[tuple[float, float]]:
    """Roughly linear, with a jitter each tenth of the time (never falling): two readings give a poor fit."""
    points, level = [], 0.0
    for i in range(1, 10):
        level = min(99.0, max(level, 100 * i / 10 + rng.gauss(0, 12)))
        points.append((i / 10, round(level, 1)))
    return points


PROGRESS_SHAPES = {"power": _power, "stall": _stall, "late": _late, "steps": _steps, "noisy": _noisy}


def progress_shape(rng: random.Random, shapes: list[str]) -> tuple[str, list[tuple[float, float]] | None]:
    name = rng.choice(shapes)
    points = PROGRESS_SHAPES[name](rng)
    if points is None:
        return name, None
    kept: list[tuple[float, float]] = []
    for fraction, percent in points:
        fraction, percent = round(fraction, 3), round(percent, 1)
        # The mock takes fractions that rise from above 0: two edges rounded onto one fraction keep the first.
        if fraction > (kept[-1][0] if kept else 0.0):
            kept.append((fraction, max(percent, kept[-1][1] if kept else 0.0)))
    return name, kept


def photo(rng: random.Random, target_bytes: int, *, render: bool = True) -> Image.Image | None:
    """A portrait with noise (so it compresses like a photo), about `target_bytes` as a JPEG, 4:3, ≤ 4000 px.
    Not `render`ed: None, after the same draws, so the uploads after it stay the same."""
    pixels = target_bytes / BYTES_PER_PIXEL
    width = min(4000, max(64, int(math.sqrt(pixels * 4 / 3))))
    height = min(3000, max(48, int(width * 3 / 4)))
    noise = rng.randbytes(width * height * 3)
    if not render:
        return None
    return Image.blend(portrait(width, height), Image.frombytes("RGB", (width, height), noise), 0.15)


@dataclass(frozen=True)
class Recorded:
    """One task as a cassette saw it: the time from its create's answer to the first poll that found it done, and
    its progress at each poll before (fraction of that time, percent)."""

    processing_s: float
    points: list[tuple[float, float]]


def recorded_tasks(cassette: Cassette) -> dict[str, list[Recorded]]:
    """Each operation's recorded tasks that ended done (`--workload DIR`): the API's own times and curves."""
    found: dict[str, list[Recorded]] = {}
    for operation, creates in cassette.creates.items():
        for create in creates:
            polls = cassette.polls.get(_task_of(create["body"]) or "", [])
            done = [since for since, poll in polls if _data(poll).get("state") == 1]
            if not done or done[0] <= 0:
                continue
            seen = [(since / done[0], float(_data(poll).get("progress") or 0)) for since, poll in polls]
            points = [(round(f, 3), p) for f, p in seen if 0 < f < 1]
            found.setdefault(operation, []).append(Recorded(round(done[0], 3), _rising(points)))
    return found


def _rising(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The mock's points rise: later fractions, progress never lower."""
    kept: list[tuple[float, float]] = []
    for fraction, percent in sorted(points):
        if fraction > (kept[-1][0] if kept else 0.0):
            kept.append((fraction, max(percent, kept[-1][1] if kept else 0.0)))
    return kept


def _task_of(body: Any) -> str | None:
    data = body.get("data") if isinstance(body, dict) else None
    return data.get("task_id") if isinstance(data, dict) else None


def _data(exchange: dict[str, Any]) -> dict[str, Any]:
    body = exchange.get("body")
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def plan(
    n: int,
    mix: dict[str, float],
    rng: random.Random,
    *,
    scenario: str,
    interval_s: float,
    small: bool = False,
    shapes: list[str] | None = None,
    images: bool = True,
    recorded: dict[str, list[Recorded]] | None = None,
) -> list[Upload]:
    """N uploads in the given mix. `burst`: all at once; `trickle`: one every `interval_s` on average (Poisson).
    Each task's progress takes one of `shapes` (default: all of them, equally often); with `recorded` tasks (a
    cassette's), an operation's tasks take the time and curve of one of its recorded tasks instead. Without
    `images`, the same uploads with empty bodies and no masks (for `bench.simulate`, which needs only their times)."""
    shapes = shapes or list(PROGRESS_SHAPES)
    # Shapes from a generator of their own: a seed's images, processing times and arrivals stay what they were
    # before shapes existed, so figures compare across versions.
    shape_rng = random.Random(f"progress shapes {rng.getstate()}")
    names = list(mix)
    uploads, at = [], 0.0
    for i in range(n):
        op = rng.choices(names, [mix[name] for name in names])[0]
        image = _image(rng, small=small, render=images)
        stem = f"b{i:04d}"
        shape, points = progress_shape(shape_rng, shapes)
        upload = Upload(
            key=f"incoming/{op}/bench/{stem}.jpg",
            body=encode(image, "JPEG") if image is not None else b"",
            operation=op,
            processing_s=round(processing_time(rng, op), 3),
            progress_curve=round(math.exp(rng.gauss(0, PROGRESS_SIGMA)), 3),
            at_s=round(at, 3),
            progress_shape=shape,
            progress_points=points,
        )
        if recorded and recorded.get(op):
            _as_recorded(upload, shape_rng.choice(recorded[op]))
        if image is not None and any(slot.name == "mask" for slot in OPERATIONS[op].slots):
            w, h = image.size
            upload.masks[f"masks/{op}/bench/{stem}.png"] = encode(mask((w, h), (w // 3, h // 3, w // 2, h // 2)), "PNG")
        uploads.append(upload)
        if scenario == "trickle":
            at += rng.expovariate(1 / interval_s)
    return uploads


def _image(rng: random.Random, *, small: bool, render: bool) -> Image.Image | None:
    """A tiny image, or one the size of a phone photo (drawn from the size distribution)."""
    if small:
        return photo(rng, 4000, render=render)
    size_mb = min(SIZE_MAX_MB, max(SIZE_MIN_MB, SIZE_MEDIAN_MB * math.exp(rng.gauss(0, SIZE_SIGMA))))
    return photo(rng, int(size_mb * 1e6), render=render)


def _as_recorded(upload: Upload, task: Recorded) -> None:
    """The upload's task takes a recorded task's time and progress curve."""
    upload.processing_s, upload.progress_shape, upload.progress_points = (
        task.processing_s,
        "recorded",
        task.points or None,
    )


def parse_shapes(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROGRESS_SHAPES]
    if unknown or not names:
        raise SystemExit(f"--progress: unknown shape {unknown!r}; known: {', '.join(PROGRESS_SHAPES)}")
    return names


def parse_mix(text: str) -> dict[str, float]:
    weights = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in OPERATIONS:
            raise SystemExit(f"--mix: unknown operation {name!r}")
        weights[name] = float(weight or 1)
    return weights
