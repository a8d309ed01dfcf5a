"""The status/state → exception mapping and the pure retry decision with its backoff."""

import pytest

from picwish_visual import errors
from picwish_visual.retry import Backoff, parse_retry_after, should_retry
from picwish_visual.states import TASK_STATES


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidRequestError),
        (401, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (413, errors.PayloadTooLargeError),
        (429, errors.RateLimitError),
        (500, errors.APIServerError),
        (502, errors.APIServerError),
        (302, errors.UnexpectedResponseError),
    ],
)
def test_every_status_maps_to_its_class(status, cls):
    error = errors.error_for(status=status, task_id="t", operation="idphoto")
    assert type(error) is cls
    assert (error.status, error.task_id, error.operation) == (status, "t", "idphoto")


def test_documented_status_meaning_is_the_default_message():
    assert errors.error_for(status=401).message.startswith("Unauthorized API key.")


@pytest.mark.parametrize("state", sorted(TASK_STATES))
def test_every_state_code_maps(state):
    error = errors.error_for(status=200, state=state, task_id="t")
    if state < 0:
        assert isinstance(error, errors.TaskFailedError)
        assert error.meaning == TASK_STATES[state] and error.message == TASK_STATES[state]
        assert error.to_record()["state"] == state
    else:
        assert error is None


def test_failed_state_keeps_an_informative_api_message():
    error = errors.error_for(state=-3, message="download timeout")
    assert error.message == f"{TASK_STATES[-3]} (download timeout)"
    assert errors.error_for(state=-3, message="success").message == TASK_STATES[-3]


@pytest.mark.parametrize("state", [7, -18, None, "1", 1.0])
def test_unknown_states(state):
    assert isinstance(errors.error_for(state=state), errors.UnknownStateError)


def test_no_state_no_error():
    assert errors.error_for(status=200) is None


def test_non_200_wins_over_the_state():
    assert isinstance(errors.error_for(status=429, state=1), errors.RateLimitError)


def conn(sent):
    return errors.APIConnectionError("x", request_sent=sent)


@pytest.mark.parametrize(
    ("error", "create", "poll"),
    [
        (errors.RateLimitError("x"), True, True),
        (errors.APIServerError("x", status=500), False, True),
        (conn(False), True, True),
        (conn(True), False, True),
        (errors.InvalidRequestError("x"), False, False),
        (errors.AuthenticationError("x"), False, False),
        (errors.NotFoundError("x"), False, False),
        (errors.PayloadTooLargeError("x"), False, False),
        (errors.TaskFailedError("x", state=-1), False, False),
        (errors.UnexpectedResponseError("x"), False, False),
    ],
)
def test_should_retry(error, create, poll):
    assert should_retry(error, is_create=True) is create
    assert should_retry(error, is_create=False) is poll


def test_backoff_full_jitter_is_capped_and_fixed_in_tests():
    b = Backoff(base_s=0.5, cap_s=4.0, jitter=lambda: 1.0)
    assert [b.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    zero = Backoff(base_s=0.5, cap_s=4.0, jitter=lambda: 0.0)
    assert zero.delay(3) == 0.0
    assert zero.delay(3, retry_after=2.0) == 2.0


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
