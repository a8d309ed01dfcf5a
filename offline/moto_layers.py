"""moto's CloudFormation creates an AWS::Lambda::Function from a fixed list of its properties, and `Layers` is not
on it: every function of the stack was deployed without the shared layer. The local Lambda service then found the
layer's packages only because the checkout is installed in the virtualenv, so functions ran the working tree's
code rather than the deployed layer's. Here the function keeps the layers its template gives it."""

from __future__ import annotations

import functools
from typing import Any

from moto.awslambda.models import LambdaFunction


def keep_function_layers() -> None:
    original = LambdaFunction.__dict__["create_from_cloudformation_json"].__func__
    if getattr(original, "_keeps_layers", False):
        return

    @functools.wraps(original)
    def create(cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw):
        fn = original(cls, resource_name, cloudformation_json, account_id, region_name, **kw)
        layers = cloudformation_json["Properties"].get("Layers")
        if layers:
            # A Ref to a layer version reaches here as moto's object for it; CloudFormation would pass its ARN.
            arns = [getattr(layer, "arn", layer) for layer in layers]
            fn.layers = fn._get_layers_data(arns)  # CreateFunction's lookup, and its error for an unknown version
        return fn

    create._keeps_layers = True  # type: ignore[attr-defined]
    LambdaFunction.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]
