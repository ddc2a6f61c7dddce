"""A cloud-init NoCloud seed for a user's own cloud image: root login by our key, the guest's host name.

NoCloud reads ``user-data`` and ``meta-data`` from a filesystem labelled
``cidata`` (an ISO 9660 image made with genisoimage, as cloud-image-utils'
``cloud-localds`` does). cloud-init prints the new SSH host keys on the
console between ``-----BEGIN SSH HOST KEY KEYS-----`` markers, which is
where ``up`` reads the key it trusts.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ..exceptions import VmError, VmUnavailable

GENISOIMAGE = "genisoimage"


def user_data(public_key: str, hostname: str) -> str:
    """``#cloud-config`` authorizing ``public_key`` for root, no passwords."""
    config = {
        "hostname": hostname,
        "disable_root": False,
        "ssh_pwauth": False,
        "users": [{"name": "root", "ssh_authorized_keys": [public_key.strip()]}],
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],
    }
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def meta_data(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname}, sort_keys=False)


def make_seed(target: Path, *, public_key: str, hostname: str, instance_id: str) -> Path:
    """Write a NoCloud seed ISO (volume ``cidata``) to ``target``."""
    if shutil.which(GENISOIMAGE) is None:
        raise VmUnavailable("making a cloud-init seed needs genisoimage (Debian package genisoimage)")
    with tempfile.TemporaryDirectory(prefix="vhpc-seed-") as tmp:
        folder = Path(tmp)
        (folder / "user-data").write_text(user_data(public_key, hostname))
        (folder / "meta-data").write_text(meta_data(instance_id, hostname))
        done = subprocess.run([GENISOIMAGE, "-quiet", "-output", str(target), "-volid", "cidata", "-joliet", "-rock",
                               str(folder / "user-data"), str(folder / "meta-data")],
                              capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise VmError(f"genisoimage failed: {done.stderr.strip()}", file=str(target))
    return target
