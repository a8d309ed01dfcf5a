"""One Lambda sandbox, in a process of its own: the init (imports and module-level code, timed), then one
invocation at a time for as long as the runtime keeps it warm. Started by `offline.lambdas`; imports nothing of
this repository, so the function sees only its code, its layer and its environment."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import socket
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct("!I")


class Channel:
    """Length-prefixed pickles over a socket: the runtime and this sandbox talk over nothing else."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self) -> Any:
        (size,) = _HEADER.unpack(self._exactly(_HEADER.size))
        return pickle.loads(self._exactly(size))

    def _exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise EOFError("the other side closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


class Context:
    """What Lambda hands a handler (the attributes Powertools reads)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.function_name = fields["function_name"]
        self.function_version = fields["function_version"]
        self.invoked_function_arn = fields["invoked_function_arn"]
        self.memory_limit_in_mb = fields["memory_limit_in_mb"]
        self.aws_request_id = fields["aws_request_id"]
        self.log_group_name = fields["log_group_name"]
        self.log_stream_name = fields["log_stream_name"]
        self._deadline = time.monotonic() + fields["timeout_s"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _plain(value: Any, depth: int = 0) -> Any:
    """An AWS call's parameters as plain data for the runtime's fault hooks (bodies and streams summarized)."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return f"<{type(value).__name__}>"


class FaultPoints:
    """Each AWS call of an invocation: counted (the runtime's bill of AWS requests), and, when the runtime has a
    fault hook for this function, put to it before and after; the answer is to go on, or an exception to raise
    here. A crash never answers: the runtime kills this process, as a dying sandbox would be."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.active = False
        self.calls: dict[str, int] = {}  # "<service>.<Operation>" → count, this invocation's AWS calls

    def install(self, events: Any) -> None:
        events.register("before-parameter-build", self._before)
        events.register("after-call", self._after)
        events.register("before-call.*.*", self._count)

    def _count(self, event_name: str, **_kw: Any) -> None:
        name = event_name.split(".", 1)[1]
        self.calls[name] = self.calls.get(name, 0) + 1

    def _ask(self, point: str, params: Any) -> None:
        self.channel.send({"fault": point, "params": _plain(params)})
        answer = self.channel.recv()
        if "raise" in answer:
            raise pickle.loads(answer["raise"])

    def _before(self, params: dict, model: Any, context: dict, **_kw: Any) -> None:
        if self.active:
            context["fault_params"] = params
            self._ask(f"before {model.service_model.service_id}.{model.name}", params)

    def _after(self, http_response: Any, model: Any, context: dict, **_kw: Any) -> None:
        if self.active and http_response is not None and http_response.status_code < 300:
            self._ask(f"after {model.service_model.service_id}.{model.name}", context.get("fault_params"))


def main() -> None:
    if sys.path and os.path.dirname(os.path.abspath(__file__)) == os.path.abspath(sys.path[0] or "."):
        sys.path.pop(0)  # this script's folder is not part of any function
    channel = Channel(socket.socket(fileno=int(sys.argv[1])))
    init = channel.recv()
    sys.path[:0] = init["paths"]
    started = time.perf_counter()
    faults = FaultPoints(channel)
    try:
        import boto3  # the runtime's SDK, as Lambda provides it; clients made at init come from this session

        boto3.setup_default_session()
        faults.install(boto3.DEFAULT_SESSION.events)
        module_name, _, attribute = init["handler"].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:  # Lambda reports any init failure as Runtime.ImportModuleError
        channel.send({"init_error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        return
    channel.send({"ready_ms": (time.perf_counter() - started) * 1000})
    while True:
        try:
            request = channel.recv()
        except EOFError:
            return
        faults.active, faults.calls = request["faults"], {}
        try:
            result = handler(request["event"], Context(request["context"]))
            answer = {"result": json.dumps(result, default=str)}
        except Exception as exc:  # what Lambda turns into the error payload
            trace = traceback.format_tb(exc.__traceback__)
            error = type(exc).__name__
            sys.stderr.write(f"[ERROR] {init['function_name']} {error}: {exc}\n{''.join(trace)}")
            sys.stderr.flush()
            answer = {"error": error, "message": str(exc), "trace": trace}
        finally:
            faults.active = False
        sys.stdout.flush()
        channel.send({**answer, "aws_calls": faults.calls})


if __name__ == "__main__":
    main()
