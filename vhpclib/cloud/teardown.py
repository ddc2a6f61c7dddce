"""``vhpc cloud down`` and ``status``: terminate everything carrying vHPC's tags, and say what runs and costs.

Termination is waited for until every instance is ``terminated``; only then can the security group
(which the instances' interfaces use) be deleted. Nothing is deleted that vHPC did not tag.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from ..exceptions import CloudError
from . import state as st
from .target import POLL_S, TAG_PREFIX, Target, connect, live_instances
from .session import Clients

Log = Callable[[str], None]
GONE_TIMEOUT_S = 900.0


def _states(aws: Clients, ids: list[str]) -> dict[str, str]:
    """State of each of ``ids`` still known (a filter, not InstanceIds: ids AWS has forgotten are no error)."""
    out = aws.call(aws.ec2, "describe_instances", Filters=[{"Name": "instance-id", "Values": ids}])
    return {i["InstanceId"]: i.get("State", {}).get("Name", "") for r in out.get("Reservations", [])
            for i in r.get("Instances", [])}


def terminate(aws: Clients, ids: list[str], log: Log, timeout: float = GONE_TIMEOUT_S) -> None:
    """Terminate those of ``ids`` not terminated yet and wait until every one is ``terminated``."""
    if not ids:
        return
    live = [i for i, state in _states(aws, ids).items() if state != "terminated"]
    if live:
        aws.call(aws.ec2, "terminate_instances", InstanceIds=live)
    deadline = time.monotonic() + timeout
    while True:
        left = [i for i, state in _states(aws, ids).items() if state != "terminated"]
        if not left:
            log(f"terminated {', '.join(live)}" if live else f"already terminated: {', '.join(ids)}")
            return
        if time.monotonic() > deadline:
            raise CloudError(f"instances still not terminated after {timeout:.0f} s: {', '.join(left)}")
        time.sleep(POLL_S)


def delete_security_group(aws: Clients, group: str, log: Log, timeout: float = 300.0) -> None:
    """Delete a group; retried while terminated instances' interfaces still hold it."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            aws.ec2.delete_security_group(GroupId=group)
            log(f"deleted security group {group}")
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidGroup.NotFound":
                return
            if code != "DependencyViolation" or time.monotonic() > deadline:
                from .session import translate

                raise translate(exc, "DeleteSecurityGroup", aws.where) from None
        time.sleep(POLL_S)


def delete_placement_group(aws: Clients, name: str, log: Log) -> None:
    aws.call(aws.ec2, "delete_placement_group", GroupName=name)
    log(f"deleted placement group {name}")


def _tagged_groups(aws: Clients, filters: list[dict]) -> list[str]:
    out = aws.call(aws.ec2, "describe_security_groups", Filters=filters)
    return [g["GroupId"] for g in out.get("SecurityGroups", [])]


def down_recorded(aws: Clients, record: dict, log: Log) -> None:
    """Remove what one ``up`` recorded creating, plus anything else tagged for its environment."""
    target_filters = [{"Name": f"tag:{TAG_PREFIX}inventory", "Values": [record["inventory"]]},
                      {"Name": f"tag:{TAG_PREFIX}environment", "Values": [record["environment"]]}]
    created = record.get("created", {})
    ids = sorted(set(created.get("instances") or []) | {i["InstanceId"] for i in live_instances(aws, target_filters)})
    terminate(aws, ids, log)
    if created.get("placement_group"):
        delete_placement_group(aws, created["placement_group"], log)
    for group in sorted(set(filter(None, [created.get("security_group")])) | set(_tagged_groups(aws, target_filters))):
        delete_security_group(aws, group, log)
    st.remove(record["inventory"], record["environment"])


def down(target: Target, log: Log) -> int:
    """Terminate every instance tagged for ``target`` and delete its groups; returns how many instances."""
    aws = connect(target)
    record = st.load(target.inventory, target.environment) or {
        "inventory": target.inventory, "environment": target.environment, "created": {}}
    if target.spec.placement_group == "create" and not record.get("created", {}).get("placement_group"):
        out = aws.call(aws.ec2, "describe_placement_groups", Filters=target.filters())
        names = [g["GroupName"] for g in out.get("PlacementGroups", [])]
        record.setdefault("created", {})["placement_group"] = names[0] if names else None
    count = len(set(record.get("created", {}).get("instances") or []) |
                {i["InstanceId"] for i in live_instances(aws, target.filters())})
    down_recorded(aws, record, log)
    return count


def status(aws: Clients, filters: list[dict] | None = None) -> list[dict]:
    """Every vHPC-tagged instance not terminated: id, environment, campaign, type, state, age in hours."""
    now = datetime.now(timezone.utc)
    rows = []
    for i in live_instances(aws, [{"Name": f"tag:{TAG_PREFIX}managed", "Values": ["true"]}] + (filters or [])):
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        launched = i.get("LaunchTime")
        hours = (now - launched).total_seconds() / 3600 if isinstance(launched, datetime) else None
        rows.append({"id": i["InstanceId"], "inventory": tags.get(f"{TAG_PREFIX}inventory"),
                     "environment": tags.get(f"{TAG_PREFIX}environment"),
                     "campaign": tags.get(f"{TAG_PREFIX}campaign"), "type": i.get("InstanceType"),
                     "state": i.get("State", {}).get("Name"), "age_h": hours})
    return rows
