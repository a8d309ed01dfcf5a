"""The dashboard and the alarms read metrics the code emits: every name they use in the pipeline's namespace is one
`picwish_pipeline.metrics` emits, every metric it emits is on the dashboard, and the dashboard body is valid JSON
once CloudFormation substitutes it."""

from __future__ import annotations

import json
import re

from offline.stack import load_template
from picwish_pipeline import metrics

NAMESPACE = "PicWishPipeline"
SQL = re.compile(r"SELECT \w+\((\w+)\) FROM (\w+)")
SEARCH = re.compile(r"SEARCH\('\{(\w+),[^}]*\} MetricName=\"(\w+)\"'")


def dashboard(template: dict) -> dict:
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # What CloudFormation puts in: names and ARNs as strings, the alarm threshold as a number.
    numbers = body.replace("${CreateWaitAlarmSeconds}", "600")
    return json.loads(re.sub(r"\$\{[\w.:]+\}", "x", numbers))


def names_in(expressions: list[str]) -> set[str]:
    found = set()
    for text in expressions:
        for name, namespace in SQL.findall(text):
            assert namespace == NAMESPACE, text
            found.add(name)
        for namespace, name in SEARCH.findall(text):
            assert namespace == NAMESPACE, text
            found.add(name)
    return found


def test_the_namespace_is_the_one_the_functions_write_to():
    template = load_template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_every_metric_on_the_dashboard_is_emitted_and_every_emitted_one_is_on_it():
    body = dashboard(load_template())
    expressions = [
        line[0]["expression"]
        for widget in body["widgets"]
        for line in widget["properties"]["metrics"]
        if isinstance(line[0], dict)
    ]
    own = [line for widget in body["widgets"] for line in widget["properties"]["metrics"] if line[0] == NAMESPACE]
    assert own == []  # the pipeline's metrics are read by queries, across operations
    assert names_in(expressions) == metrics.NAMES


def test_the_alarms_watch_emitted_metrics():
    resources = load_template()["Resources"]
    expressions = [
        m["Expression"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for m in r["Properties"].get("Metrics", [])
        if "Expression" in m
    ]
    assert names_in(expressions) == {
        metrics.FAILURE_RECORDS,
        metrics.CREATE_WAIT_S,
        metrics.THROTTLES,
        metrics.CREDIT_BUDGET_USED,
    }


def test_alarms_cover_lambda_errors_dynamodb_throttles_and_the_apis_429s():
    resources = load_template()["Resources"]
    functions = {k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    tables = {k for k, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}

    def watched(alarm: str, namespace: str) -> set[tuple[str, str]]:
        stats = [m["MetricStat"]["Metric"] for m in resources[alarm]["Properties"]["Metrics"] if "MetricStat" in m]
        assert all(s["Namespace"] == namespace for s in stats)
        return {(s["MetricName"], s["Dimensions"][0]["Value"]["Ref"]) for s in stats}

    assert watched("LambdaErrorsAlarm", "AWS/Lambda") == {("Errors", f) for f in functions}
    throttle_events = {"ReadThrottleEvents", "WriteThrottleEvents"}
    assert watched("DynamoDbThrottlesAlarm", "AWS/DynamoDB") == {(m, t) for m in throttle_events for t in tables}
    api = resources["ApiThrottlesAlarm"]["Properties"]
    assert api["Metrics"][0]["Expression"] == "SELECT SUM(throttles) FROM PicWishPipeline"
    assert api["Threshold"] == {"Ref": "ThrottleAlarmThreshold"}
