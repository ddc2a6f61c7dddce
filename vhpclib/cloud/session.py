"""boto3 clients for one cloud environment, and AWS errors as vHPC errors.

Credentials come from the environment or ``~/.aws`` files only: the instance-metadata and container
providers (which would send requests to 169.254.169.254 and friends) are removed, and without
credentials nothing is sent anywhere. ``VHPC_CLOUD_ENDPOINT`` points every client at a local emulator
(tests against moto); it must be a loopback address so credentials never travel elsewhere by mistake.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import CloudError, CloudInputError

ENDPOINT_VAR = "VHPC_CLOUD_ENDPOINT"

#: AWS error codes that are the caller's input, not a failure of the cloud: exit 2 with one line.
_CREDENTIAL_CODES = {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                     "ExpiredToken", "InvalidAccessKeyId", "IncompleteSignature", "MissingAuthenticationToken",
                     "UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "OptInRequired"}
_INPUT_CODES = {"InvalidInstanceType": "instance_type", "InvalidAMIID": "image", "ParameterNotFound": "image",
                "InvalidParameter": "image", "InvalidSubnetID": "subnet", "InvalidKeyPair": "key_pair",
                "InvalidPlacementGroup": "placement_group", "Unsupported": "instance_type",
                "InvalidParameterValue": None, "InvalidParameterCombination": None, "VcpuLimitExceeded": "count",
                "InstanceLimitExceeded": "count", "InsufficientInstanceCapacity": "count"}


def endpoint() -> str | None:
    """The emulator endpoint tests set, or None (the real AWS endpoints)."""
    url = os.environ.get(ENDPOINT_VAR)
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise CloudInputError(f"{ENDPOINT_VAR} must be an http(s) URL on a loopback address (a local emulator), "
                              f"got {url!r}")
    return url


@dataclass
class Clients:
    """The clients one environment needs; ``where`` names the inventory place errors point at."""

    ec2: Any
    ssm: Any
    sts: Any
    region: str
    endpoint: str | None
    where: dict

    def call(self, client: Any, operation: str, **kwargs: Any) -> dict:
        """One API call; an AWS error becomes ``CloudInputError`` (caller's input) or ``CloudError``."""
        from botocore.exceptions import BotoCoreError, ClientError

        name = "".join(part.title() for part in operation.split("_"))  # the API's own name (RunInstances)
        try:
            return getattr(client, operation)(**kwargs)
        except ClientError as exc:
            raise translate(exc, name, self.where) from None
        except BotoCoreError as exc:
            raise CloudError(f"{name}: {exc}", **self.where) from None


def translate(exc: Any, operation: str, where: dict) -> Exception:
    """An AWS ``ClientError`` as one line naming the operation, the code and the inventory key it is about."""
    err = exc.response.get("Error", {})
    code = str(err.get("Code", "Unknown"))
    message = str(err.get("Message", "")).strip().splitlines()[0] if err.get("Message") else ""
    text = f"{operation}: {code}: {message}" if message else f"{operation}: {code}"
    if code in _CREDENTIAL_CODES:
        return CloudInputError(f"AWS refused the credentials or permissions ({text})",
                               file=where.get("file"), key=where.get("key"))
    field = next((f for prefix, f in _INPUT_CODES.items() if code == prefix or code.startswith(prefix + ".")),
                 "missing")
    if field != "missing":
        key = where.get("key")
        return CloudInputError(text, file=where.get("file"), key=f"{key}.{field}" if key and field else key)
    return CloudError(text, file=where.get("file"), key=where.get("key"))


def _botocore_session():
    """A botocore session whose credential chain never asks a metadata service over the network."""
    import botocore.session

    session = botocore.session.Session()
    resolver = session.get_component("credential_provider")
    for name in ("iam-role", "container-role"):
        if resolver.get_provider(name) is not None:
            resolver.remove(name)
    return session


def clients(region: str, *, where: dict | None = None) -> Clients:
    """EC2, SSM and STS clients for ``region``; ``CloudInputError`` (nothing sent) without credentials."""
    import boto3
    from botocore.config import Config

    where = where or {}
    url = endpoint()
    core = _botocore_session()
    if core.get_credentials() is None:
        raise CloudInputError("no AWS credentials: set AWS_PROFILE (a profile in ~/.aws) or AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY; vHPC never reads the instance metadata service",
                              file=where.get("file"), key=where.get("key"))
    session = boto3.Session(botocore_session=core, region_name=region)
    config = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                    user_agent_extra="vhpc")
    made = {name: session.client(name, endpoint_url=url, config=config) for name in ("ec2", "ssm", "sts")}
    return Clients(made["ec2"], made["ssm"], made["sts"], region, url, where)
