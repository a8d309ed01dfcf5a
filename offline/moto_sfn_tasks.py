"""moto's Step Functions service integration (a Task that starts another machine's execution) as AWS runs it.

moto takes LocalStack's interpreter but not its conversion of a Task's parameters to the service's API and back:
it hands the ASL's `StateMachineArn`, `Name`, `Input` to boto3, which knows `stateMachineArn`, `name`, `input`
(a KeyError, the Task ends States.Runtime), and hands boto3's `executionArn`, `status`, `output` to paths that
read `ExecutionArn`, `Status`, `Output` (so `.sync` never finds its execution). Here both are converted, as
LocalStack and AWS do: the parameters to the API's names, the answer to the ASL's.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)


def _api_names(parameters: dict[str, Any]) -> None:
    for name in list(parameters):
        parameters[name[:1].lower() + name[1:]] = parameters.pop(name)


def _asl_names(response: Any) -> None:
    if isinstance(response, dict):
        for name in list(response):
            response[name[:1].upper() + name[1:]] = response.pop(name)


def convert_sfn_task_names() -> None:
    if getattr(StateTaskServiceSfn._normalise_parameters, "_converts", False):
        return
    parameters, response = StateTaskServiceSfn._normalise_parameters, StateTaskServiceSfn._normalise_response

    @functools.wraps(parameters)
    def normalise_parameters(self, *args: Any, **kwargs: Any) -> None:
        parameters(self, *args, **kwargs)
        _api_names(args[0] if args else kwargs["parameters"])

    @functools.wraps(response)
    def normalise_response(self, *args: Any, **kwargs: Any) -> None:
        response(self, *args, **kwargs)
        _asl_names(args[0] if args else kwargs["response"])

    normalise_parameters._converts = True  # type: ignore[attr-defined]
    StateTaskServiceSfn._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = normalise_response  # type: ignore[method-assign]
