"""The benchmark's workload: progress shapes the mock accepts and the pipeline's predictor does not model, drawn
without changing a seed's images, processing times or arrivals."""

import random
import statistics

import pytest

from bench.workload import PROGRESS_SHAPES, plan, progress_shape
from mock_server.config import MockConfig
from mock_server.forms import CreateRequest
from mock_server.progression import Progression, Task
from mock_server.scenarios import Outcome, outcome_from_mapping
from picwish_pipeline.scheduler.plan import predicted_total
from picwish_visual.catalog import get_operation

MIX = {"idphoto": 1.0, "inpaint": 1.0, "correction": 1.0}


def reported(outcome: Outcome, fraction: float, total_s: float = 10.0) -> int:
    """The progress the mock reports for a task `fraction` of the way through its processing."""
    now = [1000.0 + fraction * total_s]
    op = get_operation("correction")
    task = Task("t", "k", op, CreateRequest(op, False, {}), outcome, created=1000.0, processing_s=total_s)
    return Progression(MockConfig(), lambda: now[0]).look(task).progress


def prediction_errors(shape: str, draws: int = 200) -> list[float]:
    """How far the pipeline's predictor, given readings at 40 % and 60 % of the time, misses the end."""
    rng, errors = random.Random(7), []
    for _ in range(draws):
        _, points = progress_shape(rng, [shape])
        fields = {"progress_points": points} if points else {"progress_curve": round(rng.lognormvariate(0, 0.35), 3)}
        outcome = outcome_from_mapping(fields)  # the mock takes every draw as a rule
        early, late = reported(outcome, 0.4), reported(outcome, 0.6)
        if late > 0:
            errors.append(predicted_total(6.0, late, (4.0, early) if early > 0 else None) / 10.0 - 1)
    return errors


def test_the_mock_s_own_curve_is_the_predictor_s_family_and_every_other_shape_is_not():
    assert statistics.median(abs(e) for e in prediction_errors("power")) < 0.05
    for shape in set(PROGRESS_SHAPES) - {"power"}:
        errors = prediction_errors(shape)
        assert len(errors) > 150, shape
        assert statistics.median(abs(e) for e in errors) > 0.15, shape


@pytest.mark.parametrize("shape", sorted(PROGRESS_SHAPES))
def test_each_shape_s_points_rise_and_stay_under_100(shape):
    rng = random.Random(3)
    for _ in range(500):
        name, points = progress_shape(rng, [shape])
        assert name == shape
        if points is not None:
            fractions, percents = [f for f, _ in points], [p for _, p in points]
            assert fractions == sorted(set(fractions)) and fractions[0] > 0 and fractions[-1] <= 1
            assert percents == sorted(percents) and percents[-1] <= 99


def test_shapes_leave_a_seed_s_images_processing_times_and_arrivals_as_they_were():
    def drawn(shapes):
        uploads = plan(30, MIX, random.Random(2), scenario="trickle", interval_s=4, small=True, shapes=shapes)
        return [(u.key, u.body, u.processing_s, u.progress_curve, u.at_s) for u in uploads], uploads

    only_power, _ = drawn(["power"])
    mixed, uploads = drawn(None)
    assert mixed == only_power
    assert {u.progress_shape for u in uploads} == set(PROGRESS_SHAPES)


@pytest.mark.parametrize("small", [True, False])
def test_a_plan_without_images_is_the_same_uploads_without_their_bytes(small):
    """`bench.simulate` replays a seed's tasks without rendering them: the draws after each image stay the same."""

    def seen(uploads):
        return [(u.key, u.operation, u.processing_s, u.progress_curve, u.progress_shape, u.at_s) for u in uploads]

    with_images = plan(6, MIX, random.Random(3), scenario="trickle", interval_s=4.0, small=small)
    without = plan(6, MIX, random.Random(3), scenario="trickle", interval_s=4.0, small=small, images=False)
    assert seen(without) == seen(with_images)
    assert [u.progress_points for u in without] == [u.progress_points for u in with_images]
    assert all(u.body == b"" and not u.masks for u in without) and all(u.body for u in with_images)
