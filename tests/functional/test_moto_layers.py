"""moto's CloudFormation creates an AWS::Lambda::Function without its Layers; `offline.moto_layers` keeps them,
so a function deployed on the local stack runs with its layer, as on Lambda."""

import io
import json
import zipfile

import boto3
import pytest
from moto import mock_aws

from offline.moto_layers import keep_function_layers

ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    },
}


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def deploy():
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="code")
        s3.put_object(Bucket="code", Key="layer.zip", Body=zipped("python/helper.py", "X = 1\n"))
        s3.put_object(Bucket="code", Key="fn.zip", Body=zipped("app.py", "def handler(e, c):\n    return 1\n"))
        template = {
            "Resources": {
                "Role": ROLE,
                "Layer": {
                    "Type": "AWS::Lambda::LayerVersion",
                    "Properties": {"LayerName": "helper", "Content": {"S3Bucket": "code", "S3Key": "layer.zip"}},
                },
                "Fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "FunctionName": "with-layer",
                        "Runtime": "python3.12",
                        "Handler": "app.handler",
                        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                        "Code": {"S3Bucket": "code", "S3Key": "fn.zip"},
                        "Layers": [{"Ref": "Layer"}],
                    },
                },
            }
        }

        def deploy_stack() -> tuple[list[dict], str]:
            boto3.client("cloudformation").create_stack(StackName="layers", TemplateBody=json.dumps(template))
            lam = boto3.client("lambda")
            (layer,) = lam.list_layers()["Layers"]
            layer_arn = layer["LatestMatchingVersion"]["LayerVersionArn"]
            return lam.get_function_configuration(FunctionName="with-layer").get("Layers", []), layer_arn

        yield deploy_stack


def test_a_function_deployed_by_cloudformation_keeps_its_layers(deploy):
    keep_function_layers()
    layers, layer_arn = deploy()
    assert [layer["Arn"] for layer in layers] == [layer_arn]
