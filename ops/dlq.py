"""The dead-letter queue: what is in it (the uploads, or the execution ends, whose events kept failing after
Lambda's retries, and why) and re-driving each to the function it failed in, as the asynchronous invocation Lambda
made; a message goes from the queue only once its function has accepted it again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from .target import Target

UNKNOWN = "unknown"  # a message that is neither an S3 event nor an execution status event: never re-driven
PEEK_VISIBILITY_S = 30  # messages read are hidden this long, so one listing sees each once


@dataclass(frozen=True)
class Letter:
    receipt: str
    body: str
    function: str  # "submit" (an S3 event), "backstop" (an execution status event) or UNKNOWN
    keys: tuple[str, ...]
    error: str


def _what(event: Any) -> tuple[str, tuple[str, ...]]:
    """Which function an event is for, and the upload keys it names."""
    if isinstance(event, dict) and "Records" in event:
        # S3 encodes keys in its events (spaces as '+')
        keys = (r.get("s3", {}).get("object", {}).get("key", "?") for r in event["Records"])
        return "submit", tuple(unquote_plus(k) for k in keys)
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return UNKNOWN, ()
    try:
        job = json.loads(detail.get("input") or "{}").get("job") or {}
    except (AttributeError, ValueError):
        job = {}
    return "backstop", (str((job.get("upload") or {}).get("key", "?")),)


def read(target: Target, sqs: Any) -> list[Letter]:
    """Every message in the queue, each read once (hidden for a while, not deleted)."""
    if not target.dead_letter_queue_url:
        raise SystemExit("this stack names no dead-letter queue (deploy the current template.yaml)")
    letters: list[Letter] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=target.dead_letter_queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=PEEK_VISIBILITY_S,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not got:
            return letters
        for message in got:
            try:
                event = json.loads(message["Body"])
            except ValueError:
                event = None
            function, keys = _what(event)
            error = message.get("MessageAttributes", {}).get("ErrorMessage", {}).get("StringValue", "")
            letters.append(Letter(message["ReceiptHandle"], message["Body"], function, keys, error))


def release(target: Target, sqs: Any, letters: list[Letter]) -> None:
    """Make the messages read visible again at once (a dry run leaves the queue as it found it)."""
    for letter in letters:
        sqs.change_message_visibility(
            QueueUrl=target.dead_letter_queue_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0
        )


def redrive(target: Target, sqs: Any, functions: Any, letters: list[Letter]) -> int:
    """Each event to its function again, asynchronously (with Lambda's retries, and this queue if they fail);
    its message deleted once the function accepted it. A message of neither kind stays. The number re-driven."""
    names = {"submit": target.submit_function, "backstop": target.backstop_function}
    done = 0
    for letter in letters:
        if letter.function == UNKNOWN:  # left in the queue, where `dlq` keeps showing it
            continue
        name = names[letter.function]
        if not name:
            raise SystemExit(f"this stack names no {letter.function} function (deploy the current template.yaml)")
        functions.invoke(FunctionName=name, InvocationType="Event", Payload=letter.body.encode())
        sqs.delete_message(QueueUrl=target.dead_letter_queue_url, ReceiptHandle=letter.receipt)
        done += 1
    return done
