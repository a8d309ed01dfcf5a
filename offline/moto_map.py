"""A Distributed Map's S3 listing as AWS reads it, and moto does not.

- moto's ItemReader makes one ListObjectsV2 call: a map over a prefix of more than 1,000 objects sees the first
  1,000 only, and a prefix that holds none fails with a KeyError. AWS reads every page, and an empty prefix is a
  map of no items. Here the listing is read page by page.
- The listed objects' `LastModified` are datetimes in moto and ISO 8601 strings in the items AWS hands the
  iterations: they are strings here too.

Not patched: moto's ASL parser accepts only STANDARD child executions in a Distributed Map (AWS also runs
EXPRESS ones); the backfill machine's children are STANDARD (docs/decisions.md).
"""

from __future__ import annotations

from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3


def _list_every_page(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(
        resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
    )
    parameters = env.stack.pop()
    listed: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(**parameters):
        for obj in page.get("Contents", []):
            listed.append({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in obj.items()})
    env.stack.append(listed)


def read_whole_listings() -> None:
    resource_eval_s3.ResourceEvalS3._handle_list_objects_v2 = staticmethod(_list_every_page)  # type: ignore[method-assign]
