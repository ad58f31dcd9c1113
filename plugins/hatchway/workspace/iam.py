"""IAM ensures: managed policies, roles, users. Look up first, change only what differs (tags too)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from hatchway.workspace.clients import is_not_found, tag_dict, tag_list

IAM_PATH = "/hatchway/"
MAX_POLICY_VERSIONS = 5


def _document(raw: Any) -> Any:
    # boto3 decodes documents to dicts; some endpoints hand back URL-encoded JSON text.
    return json.loads(unquote(raw)) if isinstance(raw, str) else raw


def tags_to_set(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    """The wanted tags a resource lacks or holds another value of (others it carries stay)."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def ensure_policy(iam: Any, account: str, name: str, document: dict, tags: dict[str, str]) -> str:
    """Ensure a managed policy holds ``document``; a changed document becomes a new default version."""
    arn = f"arn:aws:iam::{account}:policy{IAM_PATH}{name}"
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        iam.create_policy(PolicyName=name, Path=IAM_PATH, PolicyDocument=json.dumps(document),
                          Tags=tag_list(tags))
        return arn
    missing = tags_to_set(tag_dict(iam.list_policy_tags(PolicyArn=arn)["Tags"]), tags)
    if missing:
        iam.tag_policy(PolicyArn=arn, Tags=tag_list(missing))
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    if _document(current["PolicyVersion"]["Document"]) != document:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= MAX_POLICY_VERSIONS:
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    return arn


def ensure_role(iam: Any, name: str, trust: dict, tags: dict[str, str], policy_arns: list[str]) -> str:
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        role = iam.create_role(RoleName=name, Path=IAM_PATH, AssumeRolePolicyDocument=json.dumps(trust),
                               Tags=tag_list(tags))["Role"]
    else:
        missing = tags_to_set(tag_dict(iam.list_role_tags(RoleName=name)["Tags"]), tags)
        if missing:
            iam.tag_role(RoleName=name, Tags=tag_list(missing))
    attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    for arn in policy_arns:
        if arn not in attached:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return role["Arn"]


def ensure_user(iam: Any, name: str, tags: dict[str, str], policy_arns: list[str]) -> str:
    try:
        user = iam.get_user(UserName=name)["User"]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        user = iam.create_user(UserName=name, Path=IAM_PATH, Tags=tag_list(tags))["User"]
    else:
        missing = tags_to_set(tag_dict(iam.list_user_tags(UserName=name)["Tags"]), tags)
        if missing:
            iam.tag_user(UserName=name, Tags=tag_list(missing))
    attached = {p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]}
    for arn in policy_arns:
        if arn not in attached:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
    return user["Arn"]


def ensure_instance_profile(iam: Any, name: str, role_name: str, tags: dict[str, str]) -> str:
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        profile = iam.create_instance_profile(InstanceProfileName=name, Path=IAM_PATH,
                                              Tags=tag_list(tags))["InstanceProfile"]
    if role_name not in {r["RoleName"] for r in profile.get("Roles", [])}:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role_name)
    return profile["Arn"]


def delete_user(iam: Any, name: str) -> None:
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
    for policy in iam.list_user_policies(UserName=name)["PolicyNames"]:
        iam.delete_user_policy(UserName=name, PolicyName=policy)
    iam.delete_user(UserName=name)


def delete_role(iam: Any, name: str) -> None:
    for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)


def delete_policy(iam: Any, arn: str) -> None:
    # AWS refuses to delete an attached policy (moto does not): detach it everywhere first.
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    for role in entities.get("PolicyRoles", []):
        iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    for user in entities.get("PolicyUsers", []):
        iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)
