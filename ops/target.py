"""Which pipeline the tool talks to: a deployed stack (its CloudFormation outputs, the usual AWS credentials) or
the local stack (`.local/stack.json`, written by `make stack`), and boto3 clients for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3


@dataclass(frozen=True)
class Target:
    input_bucket: str
    output_bucket: str
    state_machine_arn: str
    region: str | None = None
    endpoint_url: str | None = None  # the local stack's AWS endpoint; None for AWS itself
    credentials: tuple[str, str] | None = None  # the local stack's operator key
    dead_letter_queue_url: str | None = None
    submit_function: str | None = None
    backstop_function: str | None = None
    tasks_table: str | None = None
    rate_table: str | None = None
    backfill_machine_arn: str | None = None
    qps: float = 2.0
    credit_budget: int = 0  # credits per rolling 24 h; 0: none
    live_share: float = 0.25  # of the create lane, kept for uploads while a backfill runs
    lambda_concurrency: int | None = None  # invocations a function runs at once, where the stack bounds it

    @classmethod
    def local(cls, info_file: Path) -> Target:
        if not info_file.exists():
            raise SystemExit(f"{info_file} not found: start the local stack with `make stack` first")
        return cls.from_info(json.loads(info_file.read_text()))

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Target:
        """From the local stack's description (`offline.__main__.stack_info`)."""
        return cls(
            input_bucket=info["input_bucket"],
            output_bucket=info["output_bucket"],
            state_machine_arn=info["state_machine_arn"],
            region=info["region"],
            endpoint_url=info["endpoint_url"],
            credentials=(info["aws_access_key_id"], info["aws_secret_access_key"]),
            dead_letter_queue_url=info.get("dead_letter_queue_url"),
            submit_function=info.get("submit_function"),
            backstop_function=info.get("backstop_function"),
            tasks_table=info.get("tasks_table"),
            rate_table=info.get("rate_table"),
            backfill_machine_arn=info.get("backfill_machine_arn"),
            qps=float(info.get("qps") or 2.0),
            credit_budget=int(info.get("credit_budget") or 0),
            live_share=float(info.get("live_share") or 0.25),
            lambda_concurrency=info.get("lambda_concurrency"),
        )

    @classmethod
    def deployed(cls, stack_name: str, region: str | None = None) -> Target:
        outputs = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)
        values = {o["OutputKey"]: o["OutputValue"] for o in outputs["Stacks"][0].get("Outputs", [])}
        return cls(
            input_bucket=values["InputBucketName"],
            output_bucket=values["OutputBucketName"],
            state_machine_arn=values["StateMachineArn"],
            region=region,
            dead_letter_queue_url=values.get("DeadLetterQueueUrl"),
            submit_function=values.get("SubmitFunctionName"),
            backstop_function=values.get("BackstopFunctionName"),
            tasks_table=values.get("TasksTableName"),
            rate_table=values.get("RateLimitTableName"),
            backfill_machine_arn=values.get("BackfillStateMachineArn"),
            qps=float(values.get("ApiQps") or 2.0),
            credit_budget=int(values.get("CreditBudget") or 0),
            live_share=float(values.get("LiveUploadShare") or 0.25),
        )

    def client(self, service: str) -> Any:
        keys = {}
        if self.credentials:
            keys = {"aws_access_key_id": self.credentials[0], "aws_secret_access_key": self.credentials[1]}
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url, **keys)
