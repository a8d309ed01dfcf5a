"""Credentials that carry exactly a role's permissions on the local stack: moto enforces IAM for users but not
for assumed roles (STS AssumeRole under enforcement answered 500), so each role gets a user with the same
policies — its inline policies as the SAM transform rendered them and its managed policies — and that user's
access key is what the function (or the state machine) signs its calls with."""

from __future__ import annotations

import ast
import json
from typing import Any

ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _key(iam: Any, user: str) -> dict[str, str]:
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def mirror_role(iam: Any, role_arn: str, user: str) -> dict[str, str]:
    """A user with the role's policies; its credentials as environment variables."""
    role = role_arn.rsplit("/", 1)[-1]
    iam.create_user(UserName=user)
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto's CloudFormation stores a role's inline policy as a Python repr
            document = ast.literal_eval(document)
        # SAM's policy templates leave Version out (IAM then reads the 2008 language); moto's user policy
        # validation insists on one, and the 2012 language is the same for these statements.
        document = {"Version": "2012-10-17", **document}
        iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=json.dumps(document))
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.attach_user_policy(UserName=user, PolicyArn=attached["PolicyArn"])
    return _key(iam, user)


def operator(iam: Any, user: str = "offline-operator") -> dict[str, str]:
    """The person at the keyboard (uploads, inspection, tests): everything, as an account admin."""
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="admin", PolicyDocument=json.dumps(ADMIN))
    return _key(iam, user)
