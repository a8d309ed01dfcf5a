"""A task is done only when it says exactly state 1 and carries its operation's outputs."""

import pytest

from picwish_visual import IncompleteResultError, TaskResult, UnknownStateError, error_for, get_operation


@pytest.mark.parametrize("state", [1.0, "1", True])
def test_a_state_that_only_looks_done_is_not_done(state):
    data = {"task_id": "t", "state": state, "image": "https://r.example/x.png"}
    assert not TaskResult.from_data("idphoto", data).is_done
    assert isinstance(error_for(state=state), UnknownStateError)


@pytest.mark.parametrize("image", [None, "", 0])
def test_done_without_the_image_is_an_incomplete_result(image):
    data = {"task_id": "t", "state": 1, **({} if image is None else {"image": image})}
    with pytest.raises(IncompleteResultError, match=r"^the task reported done without its result: data\.image is"):
        TaskResult.from_data("correction", data)


def test_clothing_done_needs_a_mask_and_no_empty_one():
    with pytest.raises(IncompleteResultError, match=r"neither data\.class_masks nor data\.clothes_masks"):
        TaskResult.from_data("clothing-segmentation", {"task_id": "t", "state": 1, "clothes_masks": ""})
    with pytest.raises(IncompleteResultError, match=r"data\.class_masks\.hair is ''"):
        TaskResult.from_data("clothing-segmentation", {"task_id": "t", "state": 1, "class_masks": {"hair": ""}})
    with pytest.raises(IncompleteResultError, match=r"undocumented class name '\.\./x'"):
        TaskResult.from_data("clothing-segmentation", {"task_id": "t", "state": 1, "class_masks": {"../x": "u"}})
    # An empty ZIP field is how the API says "not returned" (output_type 1): the class masks are the result.
    done = TaskResult.from_data(
        "clothing-segmentation",
        {"task_id": "t", "state": 1, "class_masks": {"hair": "https://r.example/h.png"}, "clothes_masks": ""},
    )
    assert done.is_done and set(done.outputs()) == {"hair"}


def test_a_processing_task_may_carry_placeholders():
    assert TaskResult.from_data("idphoto", {"task_id": "t", "state": 4, "image": ""}).is_processing


@pytest.mark.parametrize(
    ("output_type", "answer", "missing"),
    [
        (2, {"class_masks": {"hair": "https://r.example/h.png"}}, ["clothes_masks"]),  # the ZIP it asked for
        (3, {"clothes_masks": "https://r.example/m.zip"}, ["class_masks"]),
        (3, {"class_masks": {"hair": "https://r.example/h.png"}, "clothes_masks": ""}, ["clothes_masks"]),
        (1, {"class_masks": {"hair": "https://r.example/h.png"}}, []),
    ],
)
def test_a_done_answer_must_carry_what_the_options_ask_for(output_type, answer, missing):
    op = get_operation("clothing-segmentation")
    result = TaskResult.from_data(op.name, {"task_id": "t", "state": 1, **answer})
    assert [f for f in op.results_for({"output_type": output_type}) if not result.carries(f)] == missing


def test_operations_returning_one_image_always_ask_for_it():
    assert get_operation("idphoto").results_for({}) == ("image",)
    assert get_operation("clothing-segmentation").results_for({}) == ("class_masks",)  # output_type 1 by default
