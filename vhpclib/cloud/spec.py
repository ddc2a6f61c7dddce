"""The inventory's ``cloud:`` section: what ``vhpc cloud up`` creates for one environment, and its guards."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REGION = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"
_TYPE = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SSM = re.compile(r"^(resolve:ssm:)?/[A-Za-z0-9_./-]+$")
_RESOURCE = r"^[A-Za-z0-9][A-Za-z0-9_.:/+=@-]{0,254}$"


class EmulatorSpec(BaseModel):
    """Tests against moto only: where the instances moto invents are really reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    testbed: str = Field(description="Name of a running vHPC testbed (`vhpc testbed up`): instance i is reached "
                                     "at node i's address, port and host key, never at the address moto returns. "
                                     "Refused unless VHPC_CLOUD_ENDPOINT points the API at a local emulator.")


class CloudSpec(BaseModel):
    """An EC2 cluster vHPC creates for this environment (``vhpc cloud up``), measures and tears down."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    region: str = Field(pattern=_REGION, description="AWS region, e.g. us-east-1.")
    instance_type: str = Field(pattern=_TYPE, description="EC2 instance type, e.g. c5n.18xlarge (checked with the "
                                                          "API before anything is created).")
    count: int = Field(ge=1, le=1000, description="Number of instances (MPI hosts).")
    image: str = Field(description="An AMI id (ami-...) or a public SSM parameter naming one, e.g. "
                                   "/aws/service/debian/release/12/latest/amd64 or "
                                   "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64.")
    user: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
                      description="SSH login of the image (admin for Debian, ec2-user for Amazon Linux).")
    key_pair: str = Field(pattern=_RESOURCE, description="Name of an existing EC2 key pair the instances accept.")
    key_file: Path = Field(description="Private key file of that key pair on this machine (~ expands).")
    placement_group: str = Field("create", pattern=_RESOURCE,
                                 description="'create': a cluster placement group vHPC creates, tags and deletes at "
                                             "`vhpc cloud down`; 'none': no placement group; any other value: the "
                                             "name of an existing group (used, never deleted).")
    efa: Literal["auto", "on", "off"] = Field("auto", description="Elastic Fabric Adapter as the primary interface: "
                                              "'auto' where the instance type supports it, 'on' (refused where it "
                                              "does not), 'off'.")
    subnet: str | None = Field(None, pattern=r"^subnet-[0-9a-f]{8,17}$",
                               description="Subnet id; unset: the default VPC's first default subnet.")
    ssh_from: str = Field("auto", description="Address range (CIDR) the security group admits SSH from: 'auto' is "
                                              "this machine's public address as a /32 (asked of "
                                              "checkip.amazonaws.com over HTTPS, only once credentials are found).")
    volume_gb: int | None = Field(None, ge=8, le=16384, description="Root volume size in GB; unset: the image's.")
    max_instances: int = Field(4, ge=1, le=1000, description="Guard: `vhpc cloud up` refuses to have more than this "
                                                             "many instances of this environment running.")
    max_hours: float = Field(2.0, gt=0, le=168, description="Guard: every instance shuts itself down (and so "
                                                            "terminates) this many hours after boot.")
    hourly_usd: float | None = Field(None, ge=0, description="Price of one instance-hour for the estimate; unset: "
                                                             "vHPC's table of on-demand prices (an estimate).")
    ssh_timeout_s: float = Field(900.0, gt=0, le=7200,
                                 description="Seconds `vhpc cloud up` waits for every host to answer SSH.")
    install: bool = Field(True, description="Install the workloads on every instance at `vhpc cloud up`: Intel MPI + "
                                            "IMB from this venv and blockss from a wheelhouse, into /opt/vhpc (the "
                                            "same payload vHPC's QEMU guests get; needs sudo on the image).")
    emulator: EmulatorSpec | None = Field(None, description="Tests against moto only (see its keys).")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not (_AMI.match(value) or _SSM.match(value)):
            raise ValueError(f"image must be an AMI id (ami-...) or an SSM parameter path (/aws/service/...), "
                             f"got {value!r}")
        return value

    @field_validator("ssh_from")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(f"ssh_from must be 'auto' or an address range like 203.0.113.7/32, got {value!r}") \
                from None
        if net.num_addresses > 256:
            raise ValueError(f"ssh_from {value} admits {net.num_addresses} addresses; give your own (/32)")
        return str(net)

    @property
    def self_destruct_minutes(self) -> int:
        """Minutes after boot at which every instance shuts itself down (``max_hours``, rounded up)."""
        return max(1, int(-(-self.max_hours * 60 // 1)))
