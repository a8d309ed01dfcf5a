"""Every branch of the poll step, on fake services: the phase it returns, what it carries on, where it writes a
base64 result, when it looks again."""

import base64
import math

import pytest

from picwish_pipeline.payloads import PollState
from picwish_pipeline.poll import poll_step
from picwish_visual import APIServerError, AuthenticationError, RateLimitError
from tests.support.fake_services import NOW, OUTPUT_BUCKET, Fakes, step_input
from tests.support.images import photo

CREATED = {"status": "created", "task_id": "t-1", "created_at": NOW - 4, "deadline_at": NOW + 236, "api_calls": 1}


@pytest.fixture
def fakes():
    return Fakes()


def poll(fakes, create=None, **previous):
    payload = step_input("state-poll.json", create=create or CREATED, poll={"state": 0, "polls": 0, **previous})
    return poll_step(fakes.svc, payload)


def done(**data):
    return {"state": 1, "progress": 100, "created_at": int(NOW - 4), "completed_at": int(NOW - 1), **data}


def test_a_done_task_carries_its_links_on_and_teaches_the_operations_durations(fakes):
    fakes.api.answers = [done(image="https://results.test/t-1/image.jpg")]
    out = poll(fakes)
    assert fakes.api.calls == [("get", "idphoto", "t-1")]
    assert (out.phase, out.state, out.polls, out.api_calls, out.throttles) == ("done", 1, 1, 2, 0)
    assert out.outputs == {"image": {"url": "https://results.test/t-1/image.jpg"}}
    assert (out.task_created_at, out.completed_at) == (int(NOW - 4), int(NOW - 1))
    [(operation, learned)] = fakes.limiter.learned
    assert operation == "idphoto" and learned.samples == 1


def test_a_base64_result_is_staged_for_finalize_and_no_bytes_enter_the_state(fakes):
    image = photo(fmt="PNG")
    fakes.api.answers = [done(image=base64.b64encode(image).decode())]
    out = poll(fakes)
    # Not under the key: only finalize, once it knows the upload is still the key's newest, writes there.
    key = f"staging/{step_input('state-poll.json').execution}/image"
    assert out.outputs == {"image": {"key": key}}
    assert fakes.s3.objects[(OUTPUT_BUCKET, key)]["Body"] == image


def test_a_done_answer_without_the_asked_output_fails_as_unexpected(fakes):
    fakes.api.answers = [done(image="")]
    out = poll(fakes)
    assert (out.phase, out.state, out.failure["reason"]) == ("failed", 1, "unexpected response")


def test_a_done_task_is_done_even_when_its_sample_cannot_be_stored(fakes):
    fakes.limiter.learn_fails = True
    fakes.api.answers = [done(image="https://results.test/x.jpg")]
    assert poll(fakes).phase == "done"


def test_a_running_task_is_looked_at_again_where_its_progress_says_it_ends(fakes):
    fakes.api.answers = [{"state": 4, "progress": 40}]
    out = poll(fakes)
    assert (out.phase, out.state, out.progress, out.polled_at, out.errors) == ("processing", 4, 40, NOW, 0)
    # 40 % after 4 s: the end is near 10 s. An idle budget reads the progress again half-way there (3 s on),
    # but never leaves a running task alone longer than the poll interval. (Offsets from NOW, not epoch
    # timestamps, go into approx: its relative tolerance on 1.8e9 s is half an hour.)
    assert out.slot_at - NOW == pytest.approx(1.0)
    assert out.wait_s == int(out.slot_at - NOW - 0.5)


def test_an_idle_budget_polls_at_the_moment_aimed_for_and_a_busy_one_at_a_slot_s_start(fakes):
    fakes.api.answers = [{"state": 4, "progress": 40}, {"state": 4, "progress": 40}]
    poll(fakes)
    idle = fakes.limiter.within[-1]  # the last reservation: the next poll's
    fakes.limiter.busy = True
    poll(fakes)
    assert (idle, fakes.limiter.within[-1]) == (True, False)


@pytest.mark.parametrize(("backlog_s", "expected"), [(15.0, 15.0), (60.0, 60.0), (200.0, 80.0)])
def test_under_a_backlog_a_task_is_looked_at_again_no_later_than_the_last_create(fakes, backlog_s, expected):
    fakes.limiter.busy, fakes.limiter.backlog_s = True, backlog_s
    fakes.api.answers = [{"state": 4, "progress": 20}]
    out = poll(fakes, create={**CREATED, "created_at": NOW - 40})
    # 20 % after 40 s says 195 s; one reading allows three times the age (120 s, NOW + 80), and the backlog ends
    # at NOW + backlog_s: from then the budget is idle and the task is planned again.
    assert out.slot_at - NOW == pytest.approx(expected)


def test_a_reading_is_spare_and_one_whose_slot_was_taken_waits_for_another_without_calling(fakes):
    fakes.api.answers = [{"state": 4, "progress": 40}]
    out = poll(fakes)
    assert out.spare and fakes.limiter.spare[-1]  # half-way to the predicted end: a reading
    fakes.limiter.displaced = True
    fakes.now = out.slot_at - 0.5  # woken by the Wait state
    again = poll_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=out.to_dict()))
    assert fakes.api.calls == [("get", "idphoto", "t-1")]  # no second GET: its slot went to a call that could not wait
    assert not again.spare and again.slot_at >= out.slot_at and again.polls == 1
    # another slot as soon as one is free, and this time it does not give way: a reading is never starved
    assert not fakes.limiter.spare[-1] and fakes.limiter.within[-1]


def test_the_second_reading_fits_the_curve_through_both(fakes):
    fakes.api.answers = [{"state": 4, "progress": 81}]
    out = poll(fakes, state=4, polls=1, api_calls=2, throttles=0, polled_at=NOW - 2, progress=25)
    # 25 % at 2 s, 81 % at 4 s: progress ∝ t^k with k = log(81/25)/log 2 ≈ 1.7, so done at 4 / 0.815^(1/k) ≈ 4.5 s
    # (a line through the last reading would say 4.9 s).
    k = math.log(81 / 25) / math.log(2)
    assert out.slot_at - NOW == pytest.approx(-4 + 4 / 0.815 ** (1 / k) + 0.05)
    assert (out.polls, out.api_calls) == (2, 3)


def test_a_poll_whose_slot_is_seconds_away_waits_without_calling(fakes):
    out = poll(fakes, state=4, polls=1, api_calls=2, throttles=0, slot_at=NOW + 5, wait_s=4)
    assert out == PollState(state=4, polls=1, api_calls=2, throttles=0, slot_at=NOW + 5, wait_s=4)
    assert fakes.api.calls == []


def test_a_task_past_its_deadline_times_out_without_another_call(fakes):
    out = poll(fakes, create={**CREATED, "deadline_at": NOW - 1}, state=4, polls=7, api_calls=8, throttles=1)
    assert out == PollState(phase="timeout", state=4, polls=7, api_calls=8, throttles=1)
    assert fakes.api.calls == []


@pytest.mark.parametrize(("state", "reason"), [(-3, "task failed"), (7, "unknown state")])
def test_a_failed_or_undocumented_state_ends_the_job_with_it(fakes, state, reason):
    fakes.api.answers = [{"state": state, "progress": 0}]
    out = poll(fakes)
    assert (out.phase, out.state, out.failure["reason"]) == ("failed", state, reason)
    assert out.failure["error"]["state"] == state


def test_a_401_polls_again_with_the_key_read_again_and_later_ones_are_waited_out_until_the_deadline(fakes):
    fakes.api.answers = [AuthenticationError("bad key", status=401)]
    out = poll(fakes)
    assert (out.phase, out.refresh_key, out.slot_at) == ("processing", True, NOW)
    fakes.api.answers = [AuthenticationError("bad key", status=401)]
    again = poll_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=out.to_dict()))
    # The task is paid for: a revoked key is read again at each poll, backing off, until the job's deadline.
    assert (again.phase, again.refresh_key, again.errors, again.api_calls) == ("processing", True, 1, 3)
    assert again.last_error["status"] == 401
    assert again.slot_at > NOW
    fakes.api.answers = [{"state": 1, "progress": 100, "image": "https://results.example/x.png"}]
    done = poll_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=again.to_dict()))
    assert (done.phase, done.errors) == ("done", 0)
    assert fakes.keys_read == [False, True, True]


def test_a_429_waits_as_long_as_the_api_asks_and_too_many_end_the_job(fakes):
    fakes.api.answers = [RateLimitError("slow down", status=429, retry_after=2)]
    out = poll(fakes)
    assert (out.phase, out.throttles, out.slot_at) == ("processing", 1, NOW + 2)
    fakes.api.answers = [RateLimitError("slow down", status=429)]
    last = poll(fakes, polls=3, api_calls=4, throttles=3)
    assert (last.phase, last.failure["reason"], last.throttles) == ("failed", "rate limited", 4)


def test_failing_polls_back_off_until_an_answer_clears_the_error(fakes):
    fakes.api.answers = [APIServerError("oops", status=502)]
    out = poll(fakes)
    assert (out.phase, out.errors, out.last_error["status"]) == ("processing", 1, 502)
    assert out.slot_at - NOW == pytest.approx(0.5)  # a full-jitter backoff from the 1 s poll interval (jitter 0.5)
    fakes.api.answers = [APIServerError("oops", status=502)]
    second = poll_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=out.to_dict()))
    # the second failing call went in its slot (0.5 s); its backoff (1 s: twice the first, jitter 0.5) counts from it
    assert [called - NOW for _, called in fakes.limiter.called] == [0.0, 0.5]
    assert (second.errors, second.slot_at - NOW) == (2, pytest.approx(0.5 + 1.0))
    fakes.api.answers = [{"state": 4, "progress": 50}]
    cleared = poll_step(fakes.svc, step_input("state-poll.json", create=CREATED, poll=second.to_dict()))
    assert (cleared.errors, cleared.last_error) == (0, None)


def test_a_retried_poll_that_missed_its_slot_takes_one_now(fakes):
    fakes.api.answers = [{"state": 4, "progress": 10}]
    out = poll(fakes, slot_at=NOW - 30, wait_s=0)
    assert fakes.limiter.reserved[0] == NOW and out.polls == 1
