"""Where moto's IAM enforcement differs from AWS, patched so each function's own policy decides its calls.

With enforcement on (`enforce_iam`), moto checks every request's credentials against the caller's policies, but:
- DynamoDB, Secrets Manager, Step Functions and Lambda authorize every action against the resource "*", so a
  policy that names its table, secret, state machine or function (as least privilege does) denies every call.
  Here the resource is the ARN the request names (a batch's one table), as in AWS.
- Lambda checks Invoke as `lambda:Invoke`; the IAM action is `lambda:InvokeFunction`. Its signature check
  refuses botocore's own signature on requests without a body (GetFunction, Invoke without payload).
- Their denials come back as an XML body botocore cannot read (a ClientError with code "403"); AWS answers
  `AccessDeniedException` in JSON. Here they do too.
- Nothing says which calls a policy let through. Here every authorized request can be journaled (principal,
  action, resource: `journal_calls`), so least privilege is checked against the calls the code really made.
- S3 answers a read of a missing key 404 only to a caller allowed s3:ListBucket on the bucket, 403 to others;
  moto answers 404 to anyone. Here the ListBucket permission is checked for such reads too.
- An S3 presigned URL (query-string authentication) raises KeyError on the missing Authorization header (HTTP
  500). Here it is authorized as its signer: the signer's policy, and the URL's expiry. Its signature is not
  recomputed (moto does not check presigned signatures without enforcement either).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from moto import settings as moto_settings
from moto.awslambda.responses import LambdaResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMRequest, IAMRequestBase, S3IAMRequest
from moto.s3.exceptions import S3AccessDeniedError
from moto.s3.models import FakeDeleteMarker
from moto.secretsmanager.models import secretsmanager_backends
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.stepfunctions.responses import StepFunctionResponse
from werkzeug.exceptions import HTTPException

_LOCK = threading.Lock()
_PATCHED: list[bool] = []


def _body(response: Any) -> dict:
    body = response.body
    if isinstance(body, dict):
        return body
    try:
        parsed = json.loads(body or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _dynamodb_resource(self: Any) -> str:
    body = _body(self)
    tables = [body["TableName"]] if body.get("TableName") else list(body.get("RequestItems") or {})
    # A batch over several tables is authorized on each by AWS; one resource is checked here: "*" (denied unless
    # a policy allows every table). The pipeline's batches read one table.
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{tables[0]}" if len(tables) == 1 else "*"


def _secret_resource(self: Any) -> str:
    secret_id = _body(self).get("SecretId")
    if not secret_id:
        return "*"
    secret = secretsmanager_backends[self.current_account][self.region].secrets.get(secret_id)
    return secret.arn if secret is not None else secret_id


def _states_resource(self: Any) -> str:
    body = _body(self)
    return body.get("executionArn") or body.get("stateMachineArn") or "*"


def _function_resource(self: Any) -> str:
    parts = self.path.split("/")
    if "functions" not in parts or parts.index("functions") + 1 >= len(parts):
        return "*"
    name = unquote(parts[parts.index("functions") + 1])
    return name if name.startswith("arn:") else f"arn:aws:lambda:{self.region}:{self.current_account}:function:{name}"


class _LambdaIAMRequest(IAMRequest):
    """Lambda's Invoke operation is the IAM action lambda:InvokeFunction. moto's signature recomputation for
    Lambda's REST paths disagrees with botocore's for requests without a body (GetFunction, an Invoke without
    payload: SignatureDoesNotMatch), so Lambda requests are authenticated by their access key alone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("action") == "Invoke":
            kwargs["action"] = "InvokeFunction"
        super().__init__(*args, **kwargs)

    def check_signature(self) -> None:
        return None


def _json_denial(self: Any, resource: str = "*") -> None:
    try:
        self._authenticate_and_authorize_action(
            _LambdaIAMRequest if isinstance(self, LambdaResponse) else IAMRequest, resource
        )
    except HTTPException as denied:
        if type(denied).__name__ != "AccessDeniedError":  # a bad signature or key stays what it is
            raise
        action = f"{self.service_name}:{self._get_action()}"
        raise JsonRESTError(
            "AccessDeniedException", f"User is not authorized to perform: {action} on resource: {resource}"
        ) from None


class _PresignedS3Request(S3IAMRequest):
    """A query-string-signed request (SigV4 or SigV2): the credential comes from the query; the check is expiry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._query = {k: v[0] for k, v in parse_qs(urlsplit(kwargs["path"]).query).items()}
        credential = self._query.get("X-Amz-Credential") or f"{self._query.get('AWSAccessKeyId')}/0/us-east-1/s3/aws4"
        kwargs["headers"] = {**dict(kwargs["headers"]), "Authorization": f"Credential={credential}, Signature=,"}
        super().__init__(*args, **kwargs)

    def _expires_at(self) -> dt.datetime:
        if "Expires" in self._query:  # SigV2: an epoch second
            return dt.datetime.fromtimestamp(int(self._query["Expires"]), dt.UTC)
        signed = dt.datetime.strptime(self._query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        return signed + dt.timedelta(seconds=int(self._query["X-Amz-Expires"]))

    def check_signature(self) -> None:
        try:
            expires_at = self._expires_at()
        except (KeyError, ValueError):
            raise S3AccessDeniedError() from None
        if dt.datetime.now(dt.UTC) > expires_at:
            raise S3AccessDeniedError()


def _s3_action(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    query = urlsplit(self.uri).query
    presigned = "Authorization" not in self.headers and ("X-Amz-Credential=" in query or "AWSAccessKeyId=" in query)
    if not presigned:
        _original_s3_action(self, bucket_name, key_name)
    else:
        arn = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
        self._authenticate_and_authorize_action(_PresignedS3Request, f"arn:aws:s3:::{arn}")
    reads = bool(bucket_name and key_name) and self.method in ("GET", "HEAD") and "versionId=" not in query
    if reads and _missing(self.backend, str(bucket_name), str(key_name)):
        request = _PresignedListBucketRequest if presigned else _ListBucketRequest
        self._authenticate_and_authorize_action(request, f"arn:aws:s3:::{bucket_name}")


def _missing(backend: Any, bucket_name: str, key_name: str) -> bool:
    try:
        found = backend.get_object(bucket_name, key_name, return_delete_marker=True)
    except Exception:  # no such bucket: S3's own answer, not a permission question
        return False
    return found is None or isinstance(found, FakeDeleteMarker)


class _ListBucketRequest(S3IAMRequest):
    """A read of a key that does not exist is answered 404 only to a caller who may list the bucket (s3:ListBucket);
    to any other, 403 — so a missing key does not reveal itself. moto answers 404 to anyone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **(kwargs | {"action": "ListBucket"}))


class _PresignedListBucketRequest(_PresignedS3Request):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **(kwargs | {"action": "ListBucket"}))


_original_s3_action = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action
_original_check = IAMRequestBase.check_action_permitted
_JOURNALS: list[collections.Counter[tuple[str, str, str]]] = []


def _journaled_check(self: Any, resource: str) -> None:
    _original_check(self, resource)
    if not _JOURNALS:  # every request passes here: no lock and no lookup unless a journal is open
        return
    principal = getattr(self._access_key, "_owner_user_name", None) or self._access_key.arn
    with _LOCK:
        for journal in _JOURNALS:
            journal[(principal, self._action, resource)] += 1


@contextlib.contextmanager
def journal_calls() -> Iterator[collections.Counter[tuple[str, str, str]]]:
    """While open: how often each (IAM user, action, resource) was authorized, as the policies were asked."""
    journal: collections.Counter[tuple[str, str, str]] = collections.Counter()
    with _LOCK:
        _JOURNALS.append(journal)
    try:
        yield journal
    finally:
        with _LOCK:
            _JOURNALS.remove(journal)


def patch_moto_iam() -> None:
    with _LOCK:
        if _PATCHED:
            return
        DynamoHandler._determine_resource = _dynamodb_resource
        SecretsManagerResponse._determine_resource = _secret_resource
        StepFunctionResponse._determine_resource = _states_resource
        LambdaResponse._determine_resource = _function_resource
        for response_class in (DynamoHandler, SecretsManagerResponse, StepFunctionResponse, LambdaResponse):
            response_class._authenticate_and_authorize_normal_action = _json_denial
        ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _s3_action
        IAMRequestBase.check_action_permitted = _journaled_check
        _PATCHED.append(True)


def relax_iam() -> None:
    """Back to moto's default: no request is checked (enforcement is process-wide, every moto server shares it)."""
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")


def enforce_iam(endpoint_url: str) -> None:
    """From now on the moto server at `endpoint_url` checks every request against its caller's IAM policies."""
    patch_moto_iam()
    requests.post(f"{endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
