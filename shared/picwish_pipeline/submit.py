"""The submit step: judge an upload (operation, size, options from its metadata) and start its execution, or
write the failure record that says why not."""

from __future__ import annotations

import json
from dataclasses import replace

from botocore.exceptions import ClientError

from picwish_visual.catalog import OPERATIONS, get_operation
from picwish_visual.errors import PicWishError, ValidationError
from picwish_visual.validation import validate_request

from . import keyrecord, records, storage, tally
from .options import options_from_metadata, parse_defaults
from .payloads import UPLOAD, Job, StepInput
from .reasons import Reason
from .services import Services
from .starts import start_admitted
from .uploads import JobPath, UploadRef, parse_job_path


def submit_event(svc: Services, event: dict) -> dict[str, int]:
    """Every record of an S3 notification, each on its own: one bad record never hides the others."""
    counts = {"started": 0, "duplicate": 0, "rejected": 0, "ignored": 0}
    if event.get("Event") == "s3:TestEvent":
        counts["ignored"] += 1
        return counts
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            counts["ignored"] += 1
            continue
        counts[submit_upload(svc, UploadRef.from_event_record(record))] += 1
    return counts


class MissingUpload(LookupError):
    """The object (or the version the event names) is gone: deleted before it could be read."""


def submit_upload(svc: Services, upload: UploadRef) -> str:
    """Validate one upload and start its execution. Whatever goes wrong while judging or starting it ends in a
    failure record before anything is paid: "invalid input" when the upload is at fault, "internal error" (and
    the exception goes on to Lambda's retries and the dead-letter queue) when it is not."""
    judged = judge_upload(svc, upload)
    if isinstance(judged, str):
        return judged
    path = judged.path
    # No timestamps in the input: the same upload must produce byte-identical input to be deduplicated.
    execution_input = json.dumps(StepInput(judged).to_dict(), sort_keys=True)
    try:
        start_admitted(
            svc,
            stateMachineArn=svc.settings.state_machine_arn,
            name=upload.execution_name(judged.operation.name),
            input=execution_input,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return "duplicate"
        _fail_internally(svc, path, upload, "the job could not be started", exc)
        raise
    except Exception as exc:
        _fail_internally(svc, path, upload, "the job could not be started", exc)
        raise
    return "started"


def judge_upload(svc: Services, upload: UploadRef, *, intake: str = UPLOAD) -> Job | str:
    """The job an upload asks for, or what became of it: "ignored" (not an upload key), or "rejected" with its
    failure record written (and counted). An error that is not the upload's fault writes "internal error" and is
    raised. `intake`: how the job came (an upload's event, a backfill)."""
    path = parse_job_path(upload.key)
    if path is None:
        return "ignored"
    try:
        return replace(_judge_upload(svc, path, upload), intake=intake)
    except ValidationError as exc:
        reason = Reason.UNKNOWN_OPERATION if exc.param == "operation" else Reason.INVALID_INPUT
        _fail_input(svc, path, upload, exc, reason=reason)
        tally.refused(svc, reason)
        return "rejected"
    except MissingUpload:
        error = PicWishError("the object was deleted before it could be read")
        _fail_input(svc, path, upload, error, reason=Reason.OBJECT_MISSING)
        tally.refused(svc, Reason.OBJECT_MISSING)
        return "rejected"
    except Exception as exc:
        _fail_internally(svc, path, upload, "the upload could not be judged", exc)
        raise


def _fail_internally(svc: Services, path: JobPath, upload: UploadRef, what: str, exc: Exception) -> None:
    """An "internal error" record before the exception goes on to Lambda's retries and the dead-letter queue; a
    retry that gets through replaces it with the job's own record."""
    # The type only: a message could carry anything (a URL, a header) into a record users read.
    error = PicWishError(f"{what} ({type(exc).__name__}); it will be tried again")
    _fail_input(svc, path, upload, error, reason=Reason.INTERNAL_ERROR)


def _judge_upload(svc: Services, path: JobPath, upload: UploadRef) -> Job:
    """The job an upload asks for, or the ValidationError / MissingUpload that refuses it. Each object is read at
    one version, and the job names those versions: the API is only ever sent the bytes judged here."""
    if not path.known_operation:
        raise ValidationError("operation", f"must be one of {', '.join(OPERATIONS)}; got {path.operation!r}")
    op = get_operation(path.operation)
    read = storage.read_capped(svc, op, op.slots[0].file_field, upload.bucket, upload.key, upload.version_id)
    if read is None:
        raise MissingUpload(upload.key)
    masks: dict[str, storage.Read] = {}
    for slot in op.slots[1:]:
        key = path.mask_key(slot.name)
        found = None if key is None else storage.read_capped(svc, op, slot.file_field, upload.bucket, key)
        if found is not None:
            masks[slot.name] = found
    options, ignored = options_from_metadata(op, read.metadata, parse_defaults(svc.settings.operation_defaults))
    if "rectangles" in options:
        masks.pop("mask", None)  # rectangles stand in for the mask
    validate_request(op, {"image": read.data, **{name: m.data for name, m in masks.items()}}, options)
    return Job(
        upload=upload,
        operation=op,
        options=options,
        masks={name: str(path.mask_key(name)) for name in masks},
        mask_versions={name: str(m.version_id) for name, m in masks.items() if m.version_id},
        ignored_metadata=ignored,
    )


def _fail_input(svc: Services, path: JobPath, upload: UploadRef, error: PicWishError, *, reason: str) -> None:
    """The upload's failure record, as the key's record if this upload is still the key's newest version."""
    record = records.failure(path, upload.to_dict(), reason=reason, error=error.to_record(), clock=svc.clock)
    found = keyrecord.commit(svc, path, upload, f"submit-{upload.identity}", lambda: ("failed", record, set()))
    if found.state == keyrecord.REPLACED:
        keyrecord.supersede(svc, path, upload, found, reason=reason, message=record["message"])
