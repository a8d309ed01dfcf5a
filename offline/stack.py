"""Deploys template.yaml into moto the way `sam package` + `sam deploy` would: local code zipped to an artifacts
bucket, the real SAM transform, then CloudFormation (moto's) creates every resource the template declares.

Nothing of the wiring is restated here: names, environments, triggers and the definition all come from the
template. The few moto gaps are worked around in `_MotoGaps`, each with the reason.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ARTIFACTS_BUCKET = "picwish-offline-artifacts"
CODE_FIELDS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


class _NoManagedPolicies:
    """The template uses SAM policy templates only, so the transform never needs AWS managed policy ARNs."""

    def load(self) -> dict[str, str]:
        return {}


@dataclass
class DeployedStack:
    name: str
    region: str
    account: str
    outputs: dict[str, str]
    resources: dict[str, str]  # logical id → physical id
    types: dict[str, str]  # logical id → resource type
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def input_bucket(self) -> str:
        return self.outputs["InputBucketName"]

    @property
    def output_bucket(self) -> str:
        return self.outputs["OutputBucketName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    @property
    def secret_arn(self) -> str:
        return self.outputs["ApiKeySecretArn"]

    def functions(self) -> dict[str, str]:
        return {k: v for k, v in self.resources.items() if self.types[k] == "AWS::Lambda::Function"}

    def state_machines(self) -> dict[str, str]:
        """Logical id → ARN (a state machine's physical id is its ARN)."""
        return {k: v for k, v in self.resources.items() if self.types[k] == "AWS::StepFunctions::StateMachine"}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    template, problems = decode(str(path))
    if problems or template is None:
        raise ValueError(f"{path} does not parse: {problems}")
    return template


def table_keys(logical_id: str, path: Path = TEMPLATE) -> dict[str, Any]:
    """A DynamoDB table's keys and billing mode as the template declares them, for `create_table` outside a stack:
    the QPS table of the slot limiter's tests and of the poll timing's replay (`bench.simulate`)."""
    properties = load_template(path)["Resources"][logical_id]["Properties"]
    wanted = {name: properties[name] for name in ("KeySchema", "AttributeDefinitions", "BillingMode")}
    return json.loads(json.dumps(wanted))  # plain values: the decoder's nodes carry their place in the file


def zip_directory(directory: Path) -> bytes:
    """A deterministic zip of a code folder (sorted entries, fixed timestamps), as `sam package` uploads. Without
    bytecode and hidden entries, as `sam build` leaves them out: a type checker's cache was 5 MB of the layer."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if path.is_file() and not any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
                info = zipfile.ZipInfo(str(relative), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def package(template: dict[str, Any], s3: Any, bucket: str = ARTIFACTS_BUCKET, root: Path = ROOT) -> dict[str, Any]:
    """Upload local CodeUri / ContentUri / DefinitionUri and point the template at the uploaded objects."""
    packaged = copy.deepcopy(template)
    for logical_id, resource in packaged["Resources"].items():
        props = resource.get("Properties", {})
        code_field = CODE_FIELDS.get(resource["Type"])
        if code_field and isinstance(props.get(code_field), str) and not props[code_field].startswith("s3://"):
            key = f"code/{logical_id}.zip"
            s3.put_object(Bucket=bucket, Key=key, Body=zip_directory(root / props[code_field]))
            props[code_field] = f"s3://{bucket}/{key}"
        if resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            key = f"statemachine/{logical_id}.asl.json"
            s3.put_object(Bucket=bucket, Key=key, Body=(root / props["DefinitionUri"]).read_bytes())
            props["DefinitionUri"] = {"Bucket": bucket, "Key": key}
    return packaged


def translate(packaged: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The real SAM transform (aws-sam-translator), as CloudFormation's AWS::Serverless transform runs it."""
    return transform(packaged, parameters, _NoManagedPolicies())


def deploy(
    name: str = "picwish",
    parameters: dict[str, str] | None = None,
    *,
    region: str = "us-east-1",
    template_path: Path = TEMPLATE,
    session: boto3.Session | None = None,
) -> DeployedStack:
    session = session or boto3.Session(region_name=region)
    s3 = session.client("s3")
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    parameters = dict(parameters or {})
    translated = translate(package(load_template(template_path), s3), parameters)
    gaps = _MotoGaps(session, name, parameters)
    for_cloudformation = gaps.prepare(translated)
    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(for_cloudformation),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {name}: {described['StackStatus']} {described.get('StackStatusReason', '')}")
    stack = gaps.stack
    for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]:
        stack.resources[r["LogicalResourceId"]] = r["PhysicalResourceId"]
        stack.types[r["LogicalResourceId"]] = r["ResourceType"]
    gaps.apply(translated, stack)
    stack.outputs = gaps.resolve_outputs(translated, stack)
    return stack


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    api: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    expiration = {
        **({"Days": rule["ExpirationInDays"]} if "ExpirationInDays" in rule else {}),
        **({"ExpiredObjectDeleteMarker": True} if rule.get("ExpiredObjectDeleteMarker") else {}),
    }
    if expiration:
        api["Expiration"] = expiration
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return api


def _replace_refs(value: Any, known: dict[str, str]) -> Any:
    """Every Ref / GetAtt Arn / ${Name} of a set-aside resource becomes its ARN."""
    if isinstance(value, list):
        return [_replace_refs(v, known) for v in value]
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in known:
        return known[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        logical_id = target.split(".")[0] if isinstance(target, str) else target[0]
        if logical_id in known:
            return known[logical_id]
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for logical_id, arn in known.items():
            text = text.replace("${" + logical_id + "}", arn)
        return {"Fn::Sub": text}
    return {k: _replace_refs(v, known) for k, v in value.items()}


class _MotoGaps:
    """Workarounds for what moto's CloudFormation does not do, in one place.

    - Buckets created through CloudFormation ignore their NotificationConfiguration: it is applied here with
      PutBucketNotificationConfiguration, from the translated template.
    - State machines created through CloudFormation are not visible to the Step Functions backend that executes
      definitions: the state machine is created through the Step Functions API, with its DefinitionSubstitutions
      resolved from the deployed resources.
    - Bucket policies are applied without their TLS-only deny (the local endpoint is plain HTTP).
    - Buckets created through CloudFormation ignore their VersioningConfiguration and LifecycleConfiguration: both
      are applied through their APIs.
    - AWS::SecretsManager::Secret, AWS::S3::BucketPolicy and AWS::Lambda::EventInvokeConfig have no moto
      CloudFormation support: they are created through their own APIs, before (secrets) or after the stack.
    References to set-aside resources are replaced by their (predictable) ARNs before CloudFormation sees them.
    """

    SET_ASIDE = (
        "AWS::StepFunctions::StateMachine",
        "AWS::SecretsManager::Secret",
        "AWS::S3::BucketPolicy",
        "AWS::Lambda::EventInvokeConfig",
    )

    def __init__(self, session: boto3.Session, stack_name: str, parameters: dict[str, str]) -> None:
        self.session = session
        self.stack = DeployedStack(
            name=stack_name,
            region=session.region_name,
            account=session.client("sts").get_caller_identity()["Account"],
            outputs={},
            resources={},
            types={},
            parameters=parameters,
        )
        self.set_aside: dict[str, dict[str, Any]] = {}
        self.conditions: dict[str, Any] = {}
        self.defaults: dict[str, str] = {}

    def prepare(self, translated: dict[str, Any]) -> dict[str, Any]:
        self.conditions = translated.get("Conditions", {})
        self.defaults = {k: str(v.get("Default", "")) for k, v in translated.get("Parameters", {}).items()}
        template = copy.deepcopy(translated)
        known: dict[str, str] = {}
        for logical_id, resource in list(template["Resources"].items()):
            if resource["Type"] not in self.SET_ASIDE:
                continue
            self.set_aside[logical_id] = template["Resources"].pop(logical_id)
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::SecretsManager::Secret":
                created = self.session.client("secretsmanager").create_secret(
                    Name=f"{self.stack.name}-{logical_id}",
                    Description=props.get("Description", ""),
                    SecretString=props.get("SecretString", ""),
                )
                known[logical_id] = created["ARN"]
            elif resource["Type"] == "AWS::StepFunctions::StateMachine":
                name = self.resolve(props["StateMachineName"], self.stack)
                region, account = self.stack.region, self.stack.account
                known[logical_id] = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
        for logical_id, arn in known.items():
            self.stack.resources[logical_id] = arn
            self.stack.types[logical_id] = self.set_aside[logical_id]["Type"]
        return _replace_refs(template, known)

    def apply(self, translated: dict[str, Any], stack: DeployedStack) -> None:
        for logical_id, resource in self.set_aside.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::StepFunctions::StateMachine":
                self._create_state_machine(logical_id, resource, stack)
            elif resource["Type"] == "AWS::S3::BucketPolicy":
                # Every statement but the TLS-only deny: the local endpoint is plain HTTP on loopback, so
                # aws:SecureTransport is false for every request there (tests check that deny statically).
                document = self.resolve(props["PolicyDocument"], stack)
                statements = [st for st in document["Statement"] if not _denies_plain_http(st)]
                if statements:
                    self.session.client("s3").put_bucket_policy(
                        Bucket=self.resolve(props["Bucket"], stack),
                        Policy=json.dumps({**document, "Statement": statements}),
                    )
            elif resource["Type"] == "AWS::Lambda::EventInvokeConfig":
                self.session.client("lambda").put_function_event_invoke_config(
                    FunctionName=self.resolve(props["FunctionName"], stack),
                    Qualifier=props.get("Qualifier", "$LATEST"),
                    MaximumRetryAttempts=props.get("MaximumRetryAttempts", 2),
                    MaximumEventAgeInSeconds=props.get("MaximumEventAgeInSeconds", 21600),
                )
        s3 = self.session.client("s3")
        for logical_id, resource in translated["Resources"].items():
            if resource["Type"] == "AWS::S3::Bucket":
                self._configure_bucket(stack.resources[logical_id], resource.get("Properties", {}))
            config = resource.get("Properties", {}).get("NotificationConfiguration")
            if resource["Type"] == "AWS::S3::Bucket" and config:
                resolved = self.resolve(config, stack)
                s3.put_bucket_notification_configuration(
                    Bucket=stack.resources[logical_id],
                    NotificationConfiguration={
                        "LambdaFunctionConfigurations": [
                            {
                                "LambdaFunctionArn": c["Function"],
                                "Events": [c["Event"]],
                                **(
                                    {"Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}}}
                                    if "Filter" in c
                                    else {}
                                ),
                            }
                            for c in resolved.get("LambdaConfigurations", [])
                        ]
                    },
                )

    def _configure_bucket(self, bucket: str, props: dict[str, Any]) -> None:
        """Versioning and lifecycle rules, which moto's CloudFormation ignores, through their APIs."""
        s3 = self.session.client("s3")
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )

    def _create_state_machine(self, logical_id: str, resource: dict[str, Any], stack: DeployedStack) -> None:
        props = resource["Properties"]
        location = props["DefinitionS3Location"]
        definition = self.session.client("s3").get_object(Bucket=location["Bucket"], Key=location["Key"])["Body"]
        text = definition.read().decode()
        for name, value in self.resolve(props.get("DefinitionSubstitutions", {}), stack).items():
            text = text.replace("${" + name + "}", str(value))
        created = self.session.client("stepfunctions").create_state_machine(
            name=self.resolve(props["StateMachineName"], stack),
            definition=text,
            roleArn=self.resolve(props["RoleArn"], stack),
        )
        if created["stateMachineArn"] != stack.resources[logical_id]:
            raise RuntimeError(
                f"{logical_id}: created {created['stateMachineArn']}, expected {stack.resources[logical_id]}"
            )

    def resolve_outputs(self, translated: dict[str, Any], stack: DeployedStack) -> dict[str, str]:
        return {k: self.resolve(v["Value"], stack) for k, v in translated.get("Outputs", {}).items()}

    def resolve(self, value: Any, stack: DeployedStack) -> Any:
        """Ref, Fn::GetAtt (Arn), Fn::Sub and Fn::If against the deployed stack — only for the set-aside pieces
        and the outputs."""
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self._holds(condition, stack) else when_false, stack)
        if "Ref" in value:
            return self._ref(value["Ref"], stack)
        if "Fn::GetAtt" in value:
            logical_id, attribute = (
                value["Fn::GetAtt"].split(".", 1) if isinstance(value["Fn::GetAtt"], str) else value["Fn::GetAtt"]
            )
            if attribute != "Arn":
                raise ValueError(f"unsupported GetAtt {value}")
            return self._arn(logical_id, stack)
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1), stack)), text)
        return {k: self.resolve(v, stack) for k, v in value.items()}

    def _holds(self, condition: Any, stack: DeployedStack) -> bool:
        """A template condition: Fn::Equals, Fn::Not and condition names, as the template uses them."""
        if isinstance(condition, str):
            return self._holds(self.conditions[condition], stack)
        if "Fn::Equals" in condition:
            left, right = (self.resolve(v, stack) for v in condition["Fn::Equals"])
            return bool(left == right)
        if "Fn::Not" in condition:
            return not self._holds(condition["Fn::Not"][0], stack)
        raise ValueError(f"unsupported condition {condition}")

    def _pseudo(self, stack: DeployedStack) -> dict[str, str]:
        return {
            "AWS::StackName": stack.name,
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def _sub(self, name: str, stack: DeployedStack) -> str:
        if "." in name:
            logical_id, _attribute = name.split(".", 1)
            return self._arn(logical_id, stack)
        return self._ref(name, stack)

    def _ref(self, name: str, stack: DeployedStack) -> str:
        pseudo = self._pseudo(stack)
        if name in pseudo:
            return pseudo[name]
        if name in stack.parameters:
            return stack.parameters[name]
        if name in self.defaults:
            return self.defaults[name]
        return stack.resources[name]

    def _arn(self, logical_id: str, stack: DeployedStack) -> str:
        physical, kind = stack.resources[logical_id], stack.types[logical_id]
        if physical.startswith("arn:"):
            return physical
        if kind == "AWS::Lambda::Function":
            return self.session.client("lambda").get_function(FunctionName=physical)["Configuration"]["FunctionArn"]
        if kind == "AWS::IAM::Role":
            return self.session.client("iam").get_role(RoleName=physical)["Role"]["Arn"]
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        raise ValueError(f"no ARN rule for {kind}")


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    return statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false"
