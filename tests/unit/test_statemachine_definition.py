"""The deployed state machine is the one described in `statemachine/definition.py`, byte for byte."""

from statemachine.definition import ASL_PATH, definition, render


def test_the_checked_in_definition_is_the_generated_one():
    assert ASL_PATH.read_text() == render(), "statemachine/pipeline.asl.json is stale: run `make asl`"


def test_every_task_retries_lambda_failures_and_only_api_steps_retry_the_api():
    states = definition()["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) == {"CreateTask", "PollTask", "Finalize", "RecordFailure"}
    for name, state in tasks.items():
        retried = [error for rule in state["Retry"] for error in rule["ErrorEquals"]]
        assert "Lambda.TooManyRequestsException" in retried and "States.Timeout" in retried, name
        assert ("TransientApiError" in retried) is (name != "RecordFailure"), name
        assert state["Catch"][0]["Next"] == ("RecordingFailed" if name == "RecordFailure" else "RecordFailure")


def test_done_is_judged_by_the_poll_steps_phase_in_two_rules():
    done = definition()["States"]["Done?"]
    assert [(c["Variable"], c["StringEquals"], c["Next"]) for c in done["Choices"]] == [
        ("$.poll.phase", "done", "Finalize"),
        ("$.poll.phase", "processing", "WaitForNextPoll"),
    ]
    assert done["Default"] == "RecordFailure"


def test_each_definition_owns_its_retry_policies():
    """A caller that scales one Task's retries (a test's short-lived machine) changes no other definition."""
    scaled = definition()
    scaled["States"]["CreateTask"]["Retry"][0]["MaxDelaySeconds"] = 2
    fresh = definition()["States"]
    assert fresh["CreateTask"]["Retry"][0]["MaxDelaySeconds"] == fresh["PollTask"]["Retry"][0]["MaxDelaySeconds"] == 30


def test_the_checked_in_backfill_definition_is_the_generated_one():
    from statemachine import backfill

    assert backfill.ASL_PATH.read_text() == backfill.render(), "statemachine/backfill.asl.json is stale: run `make asl`"
    images = backfill.definition()["States"]["Images"]
    assert images["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert images["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
