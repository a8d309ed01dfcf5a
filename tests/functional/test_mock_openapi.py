"""The mock against its own OpenAPI document: schemathesis finds no 5xx and no response outside the schema."""

import json

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mock_server import MockConfig, create_app
from mock_server.openapi import SPEC_PATH, render

app = create_app(MockConfig(api_keys=("st-key",), qps=0, time_scale=0.0001))
schema = schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_checked_in_spec_is_generated_from_the_catalog():
    assert SPEC_PATH.read_text() == render()
    served = app.test_client().get("/openapi.json").json
    assert set(served["paths"]) == {p for p in json.loads(render())["paths"]}
    assert len(served["paths"]) == 10


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_no_schema_breach(case):
    case.call_and_validate(
        headers={"X-API-KEY": "st-key"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
