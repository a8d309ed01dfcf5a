"""`picwish-ops dlq`: which function a dead letter is for, read from its shape, and a message of neither shape is
shown but never re-driven (nor deleted)."""

from __future__ import annotations

import json

from ops import dlq
from ops.target import Target

TARGET = Target(
    "in",
    "out",
    "arn:aws:states:us-east-1:123456789012:stateMachine:picwish-pipeline",
    dead_letter_queue_url="https://sqs/dlq",
    submit_function="picwish-submit",
    backstop_function="picwish-backstop",
)


class FakeSqs:
    def __init__(self, bodies: list[str]) -> None:
        self.messages = [{"ReceiptHandle": f"r{i}", "Body": b, "MessageAttributes": {}} for i, b in enumerate(bodies)]
        self.deleted: list[str] = []
        self._read = False

    def receive_message(self, **kw):
        if self._read:
            return {}
        self._read = True
        return {"Messages": self.messages}

    def delete_message(self, QueueUrl, ReceiptHandle):
        self.deleted.append(ReceiptHandle)


class FakeLambda:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, dict]] = []

    def invoke(self, FunctionName, InvocationType, Payload):
        assert InvocationType == "Event"
        self.invoked.append((FunctionName, json.loads(Payload)))


def test_each_dead_letter_goes_back_to_its_function_and_an_unknown_one_stays():
    s3_event = {"Records": [{"s3": {"object": {"key": "incoming/idphoto/a+b.jpg"}}}]}
    ended = {
        "detail": {"status": "FAILED", "input": json.dumps({"job": {"upload": {"key": "incoming/idphoto/c.jpg"}}})}
    }
    sqs, functions = FakeSqs([json.dumps(s3_event), json.dumps(ended), "not json", json.dumps({"x": 1})]), FakeLambda()
    letters = dlq.read(TARGET, sqs)
    assert [(x.function, x.keys) for x in letters] == [
        ("submit", ("incoming/idphoto/a b.jpg",)),
        ("backstop", ("incoming/idphoto/c.jpg",)),
        (dlq.UNKNOWN, ()),
        (dlq.UNKNOWN, ()),
    ]
    assert dlq.redrive(TARGET, sqs, functions, letters) == 2
    assert functions.invoked == [("picwish-submit", s3_event), ("picwish-backstop", ended)]
    assert sqs.deleted == ["r0", "r1"]
