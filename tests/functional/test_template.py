"""Static checks of template.yaml and the state machine: lint, least privilege, bucket hygiene, wiring."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from offline.stack import ARTIFACTS_BUCKET, ROOT, load_template, package, translate, zip_directory

ASL = json.loads((ROOT / "statemachine" / "pipeline.asl.json").read_text())
THROTTLED = "Lambda.TooManyRequestsException"
LAMBDA_ERRORS = {
    "Lambda.ClientExecutionTimeoutException",  # AWS's list of transient Lambda service errors to retry
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


@pytest.fixture(scope="module")
def translated():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
        yield translate(package(load_template(), s3), {})


def resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_reports_nothing():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Vended-log delivery (the state machine's logs): AWS documents these actions as taking no resource-level
# permissions, so they are granted on "*" — to the state machine's role only, and nothing else with them.
TRACES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_no_iam_wildcards(translated):
    for logical_id, role in resources(translated, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all(a != "*" and not a.endswith(":*") for a in actions), (logical_id, actions)
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                if "*" in targets:  # only what AWS accepts no narrower resource for: log delivery and X-Ray
                    allowed = (
                        LOG_DELIVERY if logical_id.endswith("StateMachineRole") and "logs" in actions[0] else TRACES
                    )
                    assert set(actions) <= allowed, (logical_id, statement)
        assert not role["Properties"].get("ManagedPolicyArns"), logical_id  # each managed policy is on "*"


def test_every_function_and_the_state_machine_log_to_a_group_with_a_retention(translated):
    res = translated["Resources"]
    functions = resources(translated, "AWS::Lambda::Function")
    assert len(functions) == 7
    for logical_id, function in functions.items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert res[group]["Type"] == "AWS::Logs::LogGroup", logical_id
        assert res[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for machine in ("PipelineStateMachine", "BackfillStateMachine"):
        logging = res[machine]["Properties"]["LoggingConfiguration"]
        assert (logging["Level"], logging["IncludeExecutionData"]) == ("ERROR", False)
        [destination] = logging["Destinations"]
        group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert res[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_bucket_blocks_public_access_encrypts_and_requires_tls(translated):
    buckets = resources(translated, "AWS::S3::Bucket")
    policies = {p["Properties"]["Bucket"]["Ref"]: p for p in resources(translated, "AWS::S3::BucketPolicy").values()}
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert (
            all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
        )
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        statement = policies[logical_id]["Properties"]["PolicyDocument"]["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"


def test_output_can_never_trigger_input(translated):
    buckets = resources(translated, "AWS::S3::Bucket")
    assert "NotificationConfiguration" not in buckets["OutputBucket"]["Properties"]
    triggers = buckets["InputBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert [t["Filter"]["S3Key"]["Rules"] for t in triggers] == [[{"Name": "prefix", "Value": "incoming/"}]]
    assert buckets["InputBucket"]["Properties"]["BucketName"] != buckets["OutputBucket"]["Properties"]["BucketName"]
    # Nothing but the submit trigger may even read from the input bucket, and nothing may write to it.
    for role in resources(translated, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                text = json.dumps(statement)
                if "-input-" in text:
                    assert not any(a.startswith("s3:Put") or a == "s3:DeleteObject" for a in statement["Action"])


# The stack's own secret, or one the user names (`ExistingApiKeySecretArn`): never the key itself.
SECRET = {"Fn::If": ["MakesApiKeySecret", {"Ref": "ApiKeySecret"}, {"Ref": "ExistingApiKeySecretArn"}]}


def test_an_existing_secret_can_stand_in_for_the_stacks_own():
    template = load_template()
    assert template["Conditions"]["MakesApiKeySecret"] == {"Fn::Equals": [{"Ref": "ExistingApiKeySecretArn"}, ""]}
    assert template["Resources"]["ApiKeySecret"]["Condition"] == "MakesApiKeySecret"
    pattern = re.compile(template["Parameters"]["ExistingApiKeySecretArn"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch(
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:picwish-Ab12"
    )
    assert not pattern.fullmatch("my-key")
    readers = [
        statement["Resource"]
        for r in template["Resources"].values()
        for policy in r.get("Properties", {}).get("Policies", [])
        if isinstance(policy, dict)
        for statement in policy.get("PolicyDocument", policy).get("Statement", [])
        if "secretsmanager:GetSecretValue" in statement["Action"]
    ]
    assert readers and all(resources == [SECRET] for resources in readers)
    assert template["Outputs"]["ApiKeySecretArn"]["Value"] == SECRET


def test_api_key_is_a_secret_never_an_environment_value(translated):
    for function in resources(translated, "AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "PICWISH_API_KEY" not in variables
        if "PICWISH_API_KEY_SECRET" in variables:
            assert variables["PICWISH_API_KEY_SECRET"] == SECRET


def test_every_task_retries_lambda_errors_with_jitter_and_catches_all():
    tasks = {name: s for name, s in ASL["States"].items() if s["Type"] == "Task"}
    assert set(tasks) == {"CreateTask", "PollTask", "Finalize", "RecordFailure"}
    for name, state in tasks.items():
        retry = next(r for r in state["Retry"] if set(r["ErrorEquals"]) >= LAMBDA_ERRORS - {THROTTLED})
        assert "States.Timeout" in retry["ErrorEquals"]  # a step that ran out of time is retried
        # ... and one whose sandbox was killed (its timeout, its memory): Lambda reports it as Lambda.Unknown
        assert "Lambda.Unknown" in retry["ErrorEquals"], name
        # another job of the key holds the key's record lock for seconds: waited out, never a failure
        busy = next(r for r in state["Retry"] if r["ErrorEquals"] == ["KeyBusy"])
        assert busy["MaxAttempts"] >= 5 and busy["JitterStrategy"] == "FULL", name
        assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] > 0 and retry["BackoffRate"] > 1
        # a throttle is transient: retried on its own, long enough to outlast a burst that fills the concurrency
        throttled = next(r for r in state["Retry"] if r["ErrorEquals"] == [THROTTLED])
        waits = [
            min(throttled["IntervalSeconds"] * throttled["BackoffRate"] ** i, throttled["MaxDelaySeconds"])
            for i in range(min(throttled["MaxAttempts"], 100))
        ]
        assert sum(waits) >= 180 and throttled["JitterStrategy"] == "FULL"
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        assert state["TimeoutSeconds"] > 0
    assert ASL["TimeoutSeconds"] > 0


def test_a_throttled_step_is_waited_out_for_as_long_as_the_machine_may_run():
    """Like a 429, a throttle never ends a job: on average the Retry outlasts the machine's own timeout."""
    for name, state in ((n, s) for n, s in ASL["States"].items() if s["Type"] == "Task"):
        throttled = next(r for r in state["Retry"] if r["ErrorEquals"] == [THROTTLED])
        first, rate, cap = throttled["IntervalSeconds"], throttled["BackoffRate"], throttled["MaxDelaySeconds"]
        growing = min(throttled["MaxAttempts"], math.ceil(math.log(cap / first, rate)))
        # full jitter waits half the backoff on average
        mean_s = sum(first * rate**i / 2 for i in range(growing)) + (throttled["MaxAttempts"] - growing) * cap / 2
        assert mean_s >= ASL["TimeoutSeconds"], (name, mean_s)


def test_every_choice_has_a_default_so_no_state_loops_forever():
    # Before a record exists the default writes one; after (the outcome of Finalize or RecordFailure) it ends the
    # execution as failed, so the console, Step Functions' redrive and the alarms see a failed job as failed.
    defaults = {name: state["Default"] for name, state in ASL["States"].items() if state["Type"] == "Choice"}
    assert defaults == {
        "Created?": "RecordFailure",
        "Done?": "RecordFailure",
        "Stored?": "JobFailed",
        "Recorded?": "JobFailed",
    }
    assert ASL["States"]["JobFailed"]["Type"] == "Fail"


def test_definition_substitutions_cover_every_placeholder():
    text = (ROOT / "statemachine" / "pipeline.asl.json").read_text()
    template = load_template()
    subs = template["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]

    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(subs)
    assert Path(ROOT / template["Resources"]["PipelineStateMachine"]["Properties"]["DefinitionUri"]).exists()


def test_every_way_an_execution_ends_badly_and_a_dead_letter_raise_an_alarm(translated):
    alarms = resources(translated, "AWS::CloudWatch::Alarm")
    watched = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"])
        for a in alarms.values()
        if "MetricName" in a["Properties"]
    }
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        assert ("AWS/States", metric) in watched, metric
    dead_letters = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["SubmitDeadLetterQueue", "QueueName"]}
    ]
    assert dead_letters and dead_letters[0]["Namespace"] == "AWS/SQS" and dead_letters[0]["Threshold"] == 1
    for alarm in alarms.values():  # each says what it watches, and pages whoever the stack was given
        assert alarm["Properties"]["AlarmActions"]["Fn::If"][0] == "HasAlarmEmail"
        assert alarm["Properties"]["AlarmDescription"]


def test_a_code_package_leaves_out_bytecode_and_hidden_folders_as_sam_build_does(tmp_path):
    for name in ("pkg/a.py", "pkg/__pycache__/a.cpython-311.pyc", ".mypy_cache/3.11/pkg.json", "pkg/.hidden/b.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    with zipfile.ZipFile(io.BytesIO(zip_directory(tmp_path))) as archive:
        assert archive.namelist() == ["pkg/a.py"]  # a type checker's cache was 5 MB of the layer


def test_alarms_go_to_a_topic_under_a_key_cloudwatch_may_use():
    # Under the AWS-managed key (alias/aws/sns), whose policy cannot grant CloudWatch anything, no alarm arrives.
    res = load_template()["Resources"]
    topic = res["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = res["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    grants = [
        st
        for st in key["Properties"]["KeyPolicy"]["Statement"]
        if st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [set(st["Action"]) for st in grants] == [{"kms:Decrypt", "kms:GenerateDataKey*"}]
    assert grants[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    for alarm in (r for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }


def test_every_output_says_what_it_is_and_the_dashboard_is_among_them():
    outputs = load_template()["Outputs"]
    assert {"InputBucketName", "OutputBucketName", "StateMachineArn", "ApiKeySecretArn", "DashboardUrl"} <= set(outputs)
    assert all(output.get("Description") for output in outputs.values()), outputs


def test_buckets_keep_their_data_when_the_stack_goes_and_clean_up_incomplete_uploads():
    for name, bucket in resources(load_template(), "AWS::S3::Bucket").items():
        assert (bucket.get("DeletionPolicy"), bucket.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name
        rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        assert any(r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 7} for r in rules), name


def test_bucket_names_hold_the_region_and_fit_s3s_rules_whatever_the_stack_is_called():
    # The stack's name is not in them: a stack named "Catalog-Prod" deploys (S3 refuses capitals).
    template = load_template()
    prefix = template["Parameters"]["BucketPrefix"]
    pattern = re.compile(prefix["AllowedPattern"])
    assert pattern.fullmatch(prefix["Default"]) and pattern.fullmatch("catalog-prod")
    assert not any(pattern.fullmatch(bad) for bad in ("Catalog", "-x", "x-", "a_b", "x" * 25))
    longest = "x" * 24
    for logical_id in ("InputBucket", "OutputBucket"):
        name = template["Resources"][logical_id]["Properties"]["BucketName"]["Fn::Sub"]
        assert "${AWS::Region}" in name and "${AWS::StackName}" not in name, name
        rendered = name.replace("${BucketPrefix}", longest).replace("${AWS::AccountId}", "123456789012")
        rendered = rendered.replace("${AWS::Region}", "ap-southeast-2")
        assert len(rendered) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", rendered), rendered
