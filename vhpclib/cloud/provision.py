"""``vhpc cloud up``: create what an environment's ``cloud:`` section asks for, wait for strict SSH, record hosts.

Order: local guards -> credentials (nothing sent without them) -> the caller is who AWS says -> the
instance type and image exist -> ``max_instances`` counting what already runs -> the hourly estimate and
``--yes`` -> create (security group, placement group, instances, each recorded in the state file the
moment it exists) -> wait for running, host keys, SSH. Any error, Ctrl-C or SIGTERM after the first
creation terminates everything created unless ``keep``. Instances shut down into ``terminate`` and shut
themselves down ``max_hours`` after boot, whatever happens to this process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..exceptions import CloudError, CloudInputError, HostUnreachable
from . import state as st
from .cost import check_count, estimate_text, hourly_price
from .hostkeys import console_host_keys, known_hosts_lines
from .session import Clients
from .spec import CloudSpec
from .target import POLL_S, Target, connect, live_instances

Log = Callable[[str], None]


# ---------------------------------------------------------------- checks before anything is created

def preflight(target: Target, aws: Clients) -> dict:
    """Everything checked before creating: caller, instance type (EFA support), image, running count, price."""
    spec = target.spec
    if spec.emulator is not None and aws.endpoint is None:
        from .session import ENDPOINT_VAR

        raise CloudInputError(f"cloud.emulator maps instances onto testbed nodes, which only makes sense against a "
                              f"local emulator: set {ENDPOINT_VAR}, or remove 'emulator'",
                              file=target.source, key=f"{target.where['key']}.emulator")
    aws.call(aws.sts, "get_caller_identity")
    types = aws.call(aws.ec2, "describe_instance_types", InstanceTypes=[spec.instance_type]).get("InstanceTypes")
    if not types:
        raise CloudInputError(f"instance type {spec.instance_type} is not offered in {spec.region}",
                              file=target.source, key=f"{target.where['key']}.instance_type")
    efa_supported = bool(types[0].get("NetworkInfo", {}).get("EfaSupported"))
    if spec.efa == "on" and not efa_supported:
        raise CloudInputError(f"{spec.instance_type} does not support EFA; set efa: auto or off",
                              file=target.source, key=f"{target.where['key']}.efa")
    image = resolve_image(aws, spec.image)
    running = live_instances(aws, target.filters())
    check_count(spec, len(running), where=target.where)
    return {"efa": spec.efa == "on" or (spec.efa == "auto" and efa_supported), "image": image,
            "running": running, "price": hourly_price(spec, where=target.where),
            "network": types[0].get("NetworkInfo", {}).get("NetworkPerformance")}


def resolve_image(aws: Clients, image: str) -> str:
    """The AMI id: as given, or the value of the public SSM parameter naming it; checked to exist."""
    ami = image
    if not image.startswith("ami-"):
        name = image.removeprefix("resolve:ssm:")
        ami = aws.call(aws.ssm, "get_parameter", Name=name)["Parameter"]["Value"]
    if not aws.call(aws.ec2, "describe_images", ImageIds=[ami]).get("Images"):
        raise CloudInputError(f"image {ami} not found in {aws.region}", **_image_where(aws))
    return ami


def _image_where(aws: Clients) -> dict:
    key = aws.where.get("key")
    return {"file": aws.where.get("file"), "key": f"{key}.image" if key else None}


def caller_cidr(spec: CloudSpec) -> str:
    """``ssh_from``, or this machine's public address as a /32 (asked of checkip.amazonaws.com)."""
    if spec.ssh_from != "auto":
        return spec.ssh_from
    import ipaddress
    import urllib.request

    try:
        with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as answer:  # noqa: S310
            address = ipaddress.ip_address(answer.read().decode().strip())
    except (OSError, ValueError) as exc:
        raise CloudError(f"could not learn this machine's public address for the SSH rule ({exc}); set "
                         "cloud.ssh_from to your address as a /32") from None
    return f"{address}/{32 if address.version == 4 else 128}"


# ---------------------------------------------------------------- creating (each step recorded at once)

def _record(target: Target, record: dict, **created: object) -> None:
    record["created"].update(created)
    st.save(record)


def _subnet(target: Target, aws: Clients) -> dict:
    filters = ([{"Name": "subnet-id", "Values": [target.spec.subnet]}] if target.spec.subnet
               else [{"Name": "default-for-az", "Values": ["true"]}])
    subnets = aws.call(aws.ec2, "describe_subnets", Filters=filters).get("Subnets", [])
    if not subnets:
        what = f"subnet {target.spec.subnet}" if target.spec.subnet else "a default subnet (no default VPC?)"
        raise CloudInputError(f"{what} not found in {target.spec.region}", file=target.source,
                              key=f"{target.where['key']}.subnet")
    return sorted(subnets, key=lambda s: s.get("AvailabilityZone", ""))[0]


def create_security_group(target: Target, aws: Clients, record: dict, vpc: str, cidr: str) -> str:
    """A group admitting SSH from ``cidr`` only and all traffic among its own members."""
    group = aws.call(aws.ec2, "create_security_group", GroupName=target.name, VpcId=vpc,
                     Description=f"vHPC {target.inventory}/{target.environment}: SSH from the caller, MPI inside",
                     TagSpecifications=target.tag_specs("security-group"))["GroupId"]
    _record(target, record, security_group=group)
    aws.call(aws.ec2, "authorize_security_group_ingress", GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges" if ":" not in cidr else "Ipv6Ranges":
             [{"CidrIp" if ":" not in cidr else "CidrIpv6": cidr, "Description": "SSH from the vhpc caller"}]},
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group, "Description": "all traffic inside"}]}])
    return group


def placement(target: Target, aws: Clients, record: dict) -> str | None:
    """The placement group to launch into (created and recorded when the inventory says 'create')."""
    pg = target.spec.placement_group
    if pg == "none":
        return None
    if pg != "create":
        return pg
    aws.call(aws.ec2, "create_placement_group", GroupName=target.name, Strategy="cluster",
             TagSpecifications=target.tag_specs("placement-group"))
    _record(target, record, placement_group=target.name)
    return target.name


def self_destruct(spec: CloudSpec) -> str:
    """User data: the instance powers itself off (and so terminates) ``max_hours`` after boot."""
    return ("#!/bin/sh\n# vHPC: the last line of defence against a forgotten cluster (max_hours).\n"
            f"shutdown -h +{spec.self_destruct_minutes} 'vhpc max_hours reached' || "
            f"(sleep {spec.self_destruct_minutes * 60} && poweroff) &\n")


def launch(target: Target, aws: Clients, record: dict, pre: dict, subnet: dict, group: str, pg: str | None) -> list:
    """All instances in one request (a cluster placement group wants them together); ids recorded at once."""
    spec = target.spec
    args: dict = {
        "ImageId": pre["image"], "InstanceType": spec.instance_type, "MinCount": spec.count,
        "MaxCount": spec.count, "KeyName": spec.key_pair, "InstanceInitiatedShutdownBehavior": "terminate",
        "UserData": self_destruct(spec), "ClientToken": f"vhpc-{uuid.uuid4().hex}",
        "TagSpecifications": target.tag_specs("instance", "volume", "network-interface"),
        "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet["SubnetId"], "Groups": [group],
                               "AssociatePublicIpAddress": True, "DeleteOnTermination": True,
                               "InterfaceType": "efa" if pre["efa"] else "interface"}],
    }
    if pg:
        args["Placement"] = {"GroupName": pg}
    if spec.volume_gb:
        args["BlockDeviceMappings"] = [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": spec.volume_gb,
                                                                          "DeleteOnTermination": True}}]
    instances = aws.call(aws.ec2, "run_instances", **args)["Instances"]
    _record(target, record, instances=[i["InstanceId"] for i in instances])
    return sorted(instances, key=lambda i: i.get("AmiLaunchIndex", 0))


# ---------------------------------------------------------------- waiting

def wait_running(aws: Clients, ids: list[str], deadline: float, log: Log) -> list[dict]:
    """The instances once every one is running (a terminated one is an error: capacity, limits, image)."""
    while True:  # a filter: an id the API does not list yet is "missing", not an error
        out = aws.call(aws.ec2, "describe_instances", Filters=[{"Name": "instance-id", "Values": ids}])
        found = {i["InstanceId"]: i for r in out.get("Reservations", []) for i in r.get("Instances", [])}
        states = {i: found.get(i, {}).get("State", {}).get("Name", "missing") for i in ids}
        dead = [i for i, s in states.items() if s in ("shutting-down", "terminated", "stopped", "stopping")]
        if dead:
            reason = found.get(dead[0], {}).get("StateReason", {}).get("Message", "no reason given")
            raise CloudError(f"instance {dead[0]} went {states[dead[0]]} while starting: {reason}")
        if all(s == "running" for s in states.values()):
            return [found[i] for i in ids]
        if time.monotonic() > deadline:
            raise CloudError(f"instances not running in time: {states}")
        time.sleep(POLL_S)


def instance_facts(instance: dict, pg: str | None) -> dict:
    """What the API says of one instance (the record's cloud facts; on an emulator, all there is)."""
    nics = instance.get("NetworkInterfaces") or [{}]
    return {"id": instance["InstanceId"], "type": instance.get("InstanceType"),
            "hypervisor": instance.get("Hypervisor"), "az": instance.get("Placement", {}).get("AvailabilityZone"),
            "placement_group": instance.get("Placement", {}).get("GroupName") or pg,
            "public_ip": instance.get("PublicIpAddress"), "private_ip": instance.get("PrivateIpAddress"),
            "private_dns": instance.get("PrivateDnsName"), "interface_type": nics[0].get("InterfaceType"),
            "ena_support": instance.get("EnaSupport"), "launch_time": str(instance.get("LaunchTime"))}


def console_known_hosts(aws: Clients, target: Target, facts: list[dict], deadline: float, log: Log) -> dict:
    """Hosts reached at their public address, their keys from the console output (waited for)."""
    lines: list[str] = []
    hosts = []
    for f in facts:
        address = f["public_ip"] or f["private_ip"]
        while True:
            out = aws.call(aws.ec2, "get_console_output", InstanceId=f["id"], Latest=True)
            keys = console_host_keys(out.get("Output") or "")
            if keys:
                break
            if time.monotonic() > deadline:
                raise CloudError(f"instance {f['id']} printed no SSH host keys on its console in time; vHPC "
                                 "connects only with keys it can verify (cloud-init prints them at first boot)")
            time.sleep(POLL_S * 5)
        lines += known_hosts_lines([address], keys)
        hosts.append({"name": f["id"], "address": address, "port": 22, "user": target.spec.user,
                      "key_file": str(Path(target.spec.key_file).expanduser()), "mpi_address": f["private_ip"]})
    known = st.folder(target.inventory, target.environment) / "known_hosts"
    from ..fsutil import atomic_write

    atomic_write(known, "\n".join(lines) + "\n", mode=0o600)
    return {"hosts": hosts, "known_hosts": str(known), "mpi_env": {}, "launch": None,
            "host_keys_from": "console output"}


def wait_ssh(hosts: list[dict], known_hosts: str, deadline: float, log: Log) -> None:
    """Every host answers a command over SSH with its host key checked strictly."""
    from ..config import HostSpec
    from ..remote import SshExecutor

    for host in hosts:
        spec = HostSpec(**host)
        while True:
            try:
                with SshExecutor(spec, policy="strict", known_hosts=Path(known_hosts), connect_timeout=5) as ex:
                    ex.run("true", timeout=20)
                break
            except HostUnreachable as exc:
                if time.monotonic() > deadline:
                    raise CloudError(f"instance {host['name']} ({host['address']}) did not answer SSH in time: "
                                     f"{exc}") from None
                time.sleep(POLL_S)
        log(f"{host['name']}: SSH answers at {host['address']}:{host['port']} (host key checked)")


def install_workloads(target: Target, reach: dict, log: Log) -> dict:
    """The guests' payload (Intel MPI + IMB, blockss wheelhouse) into /opt/vhpc on every instance, over SSH."""
    spec = target.spec
    if spec.emulator is not None:
        return {"skipped": "emulated: the hosts are testbed nodes of this machine and run its own venv"}
    if not spec.install:
        return {"skipped": "cloud.install is false: the image brings the workloads (see the environment's mpi:)"}
    from ..vm.guest_ssh import GuestSsh
    from ..vm.provision import GUEST_PREFIX, install, prepare_payload

    payload = prepare_payload()
    done = {}
    for host in reach["hosts"]:
        ssh = GuestSsh(port=host["port"], client_key=Path(host["key_file"]), known_hosts=Path(reach["known_hosts"]),
                       address=host["address"], user=host["user"])
        ssh.run(f"sudo install -d -o \"$(id -u)\" -g \"$(id -g)\" {GUEST_PREFIX}", timeout=120)
        done[host["name"]] = install(ssh, payload)
        log(f"{host['name']}: Intel MPI {payload.mpi_version}, IMB and blockss installed in {GUEST_PREFIX}")
    return {"prefix": GUEST_PREFIX, "hosts": done}


# ---------------------------------------------------------------- up

def up(target: Target, *, yes: bool, keep: bool = False, log: Log = print) -> dict:
    """Create the environment (unless already up as declared) and return its state with the hosts."""
    existing = st.load(target.inventory, target.environment)
    aws = connect(target)
    if existing and existing.get("complete"):
        still_running(target, aws, existing)
        log(f"{target.environment}: already up ({len(existing['hosts'])} host(s)); `vhpc cloud down` first to "
            "start afresh")
        return existing
    pre = preflight(target, aws)
    if pre["running"]:
        ids = " ".join(i["InstanceId"] for i in pre["running"])
        raise CloudInputError(f"instances of this environment already run without a complete state ({ids}): "
                              "`vhpc cloud down` them first", **target.where)
    log(estimate_text(target.spec, target.spec.count, pre["price"]))
    if not yes:
        raise CloudInputError("nothing created: pass --yes to accept the estimated cost", **target.where)
    cidr = caller_cidr(target.spec)
    record = {"inventory": target.inventory, "environment": target.environment, "campaign": target.campaign,
              "region": target.spec.region, "endpoint": aws.endpoint, "tags": target.tags(),
              "price_usd_h": pre["price"], "started_utc": datetime.now(timezone.utc).isoformat(),
              "complete": False, "created": {"security_group": None, "placement_group": None, "instances": []}}
    st.save(record)
    try:
        _create_and_wait(target, aws, record, pre, cidr, log)
    except BaseException:
        if keep:
            log("kept what was created (--keep): `vhpc cloud down` terminates it")
        else:
            log("terminating what was created ...")
            from .teardown import down_recorded

            down_recorded(aws, record, log)
        raise
    return record


def still_running(target: Target, aws: Clients, record: dict) -> None:
    """Every instance ``up`` recorded still runs (``max_hours``' self-destruct or a person may have ended it)."""
    running = {i["InstanceId"] for i in live_instances(aws, target.filters())
               if i.get("State", {}).get("Name") == "running"}
    gone = [i for i in record.get("created", {}).get("instances", []) if i not in running]
    if gone:
        raise CloudInputError(f"instance(s) {', '.join(gone)} of this environment no longer run (max_hours' "
                              "self-destruct, or ended by hand): `vhpc cloud down`, then `vhpc cloud up`",
                              **target.where)


def _create_and_wait(target: Target, aws: Clients, record: dict, pre: dict, cidr: str, log: Log) -> None:
    spec = target.spec
    deadline = time.monotonic() + spec.ssh_timeout_s
    subnet = _subnet(target, aws)
    group = create_security_group(target, aws, record, subnet["VpcId"], cidr)
    pg = placement(target, aws, record)
    launched = launch(target, aws, record, pre, subnet, group, pg)
    log(f"launched {', '.join(i['InstanceId'] for i in launched)} ({spec.instance_type}, "
        f"{'EFA' if pre['efa'] else 'ENA'}, placement group {pg or 'none'}, shutdown -> terminate, "
        f"self-destruct after {spec.max_hours:g} h)")
    running = wait_running(aws, [i["InstanceId"] for i in launched], deadline, log)
    facts = [instance_facts(i, pg) for i in running]
    record.update(instances=facts, emulated=spec.emulator is not None, network_performance=pre["network"])
    st.save(record)
    if spec.emulator is not None:
        from .emulated import testbed_hosts

        reach = testbed_hosts(spec.emulator.testbed, facts, endpoint=aws.endpoint, where=target.where)
    else:
        reach = console_known_hosts(aws, target, facts, deadline, log)
    record.update(reach)
    st.save(record)
    wait_ssh(reach["hosts"], reach["known_hosts"], deadline, log)
    record["install"] = install_workloads(target, reach, log)
    record["complete"] = True
    record["ready_utc"] = datetime.now(timezone.utc).isoformat()
    st.save(record)
