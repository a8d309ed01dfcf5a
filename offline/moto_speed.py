"""moto is built for tests, not for a burst of hundreds of uploads: six of its costs dominated the local
stack's CPU under a burst (measured with py-spy) and each is a pure function of an input that never changes,
so each is computed once. Behaviour is unchanged; only repeated work is gone.

- Every request resolved its backend under one global lock by listing moto's package directory (~170 `isdir`
  calls) and trying hundreds of URL regexes: the answer per host is cached.
- A service's botocore model is loaded on a service's first request; a burst sends a hundred first requests at
  once and each loaded the same JSON: the models the stack uses are loaded before the burst.
- Every Lambda task of every execution built a new boto3 client to invoke the function (a tenth of the CPU):
  one client per region and role, shared (boto3 clients are thread-safe), with a connection pool for the burst.
  The same clients serve a Distributed Map's S3 listing and results and a Task's StartExecution, signed as the
  machine's role.
- Every JSONPath of every state (`$.create.wait_s`, …) was parsed by a new yacc parser on each evaluation:
  parsed once per path (the parsed expression is immutable).
- Every execution parsed the state machine's definition with ANTLR (~0.1 s of CPU each): parsed once per
  definition. The parsed program is safe to share: evaluation keeps its state in each execution's own
  environment, keyed by the components' heap keys — which moto draws at random on first use, a race when
  executions share components, so they are made the components' identities instead.
- Every DynamoDB Query sorted the whole table: it reads its partition's matching items (`offline.moto_query`).
"""

from __future__ import annotations

import functools
import threading

import boto3
from botocore.config import Config
from moto.core.models import botocore_stubber
from moto.core.utils import get_service_model
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
    resource_eval_s3 as item_reader_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
    resource_eval_s3 as result_writer_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from offline.moto_query import narrow_table_queries

SERVICES = ("s3", "dynamodb", "stepfunctions", "lambda", "secretsmanager", "sts")
_LOCK = threading.Lock()
# Each state machine's role (by ARN), as credentials (offline.iam): what its tasks sign their calls with.
STATE_MACHINE_CREDENTIALS: dict[str, dict[str, str]] = {}
_TEST_IDENTITY = {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}


def speed_up_moto() -> None:
    with _LOCK:
        if getattr(DomainDispatcherApplication.get_backend_for_host, "_cached", False):
            return
        _cache_backend_lookup()
        _cache_state_machine_parse()
        _share_lambda_clients()
        narrow_table_queries()
        json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)
        for service in SERVICES:
            get_service_model(service)


def _cache_backend_lookup() -> None:
    original = DomainDispatcherApplication.get_backend_for_host
    lookups: dict[tuple[int, str | None], object] = {}

    @functools.wraps(original)
    def cached(self, host):
        key = (id(self), host)
        if key not in lookups:
            lookups[key] = original(self, host)
        return lookups[key]

    cached._cached = True
    DomainDispatcherApplication.get_backend_for_host = cached


def _cache_state_machine_parse() -> None:
    parsed: dict[str, object] = {}
    lock = threading.Lock()

    def entrypoint(self):
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            if definition not in parsed:
                parsed[definition] = AmazonStateLanguageParser.parse(definition)[0]
            return parsed[definition]

    ExecutionWorker._get_evaluation_entrypoint = entrypoint
    EvalComponent.heap_key = property(lambda self: f"heap-{id(self)}")


def _share_lambda_clients() -> None:
    clients: dict[tuple, object] = {}
    lock = threading.Lock()

    def shared(region: str, service: str, state_credentials=None):
        # moto passes the execution's role here and then ignores it (it signs as "ak"); the role's credentials,
        # where the local stack has set them, are what the call is authorized as. In decorator mode moto
        # intercepts the calls; in server mode they go to its port.
        endpoint = None if botocore_stubber.enabled else f"http://127.0.0.1:{moto_server_port()}"
        role = getattr(state_credentials, "role_arn", None)
        credentials = STATE_MACHINE_CREDENTIALS.get(str(role)) or _TEST_IDENTITY
        key = (region, service, endpoint, credentials["AWS_ACCESS_KEY_ID"])
        with lock:
            if key not in clients:
                # As moto's own factory, plus a pool that holds every execution's connection in a burst.
                clients[key] = boto3.client(
                    service,
                    region_name=region,
                    endpoint_url=endpoint,
                    aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=256,
                    ),
                )
            return clients[key]

    lambda_eval_utils.boto_client_for = shared
    # A Distributed Map's listing (ItemReader) and its results (ResultWriter), and a Task that starts another
    # machine's execution, are calls of the machine's role too.
    item_reader_s3.boto_client_for = shared
    result_writer_s3.boto_client_for = shared
    state_task_service_sfn.boto_client_for = shared
