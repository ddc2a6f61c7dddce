"""The root filesystem every native layer runs: the QEMU guest's debootstrap base with the workloads inside.

One cached tree per guest recipe and workload payload (``~/.cache/vhpc/layers/rootfs-<key>/``): the
debootstrap base the QEMU guest image is made from (``vhpclib.vm.image``, same recipe, same cache),
copied, with Intel MPI, IMB and blockss (numpy, scipy, mpi4py) installed at ``/opt/vhpc`` by the
guest's own python3 in a chroot, exactly as in the guest. Containers import it as a podman image,
user-mode Linux boots an ext4 file made from it, gVisor runs the container image. Built in a hidden
temporary folder renamed into place when complete: an interrupted build never looks cached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..exceptions import LayerUnavailable, VmError, VmUnavailable

#: Where the workloads live inside every layer (the same prefix as in the QEMU guest).
PREFIX = "/opt/vhpc"
LAYER_VERSION = 1
MANIFEST = "manifest.json"
KEEP = 2  # built trees kept (one per blockss / Intel MPI / recipe version)

# The guest image's own files (sshd, networking, serial host key) are for a booted VM; a layer needs none
# of them, only a name and a hosts file that resolves it.
LAYER_FILES: dict[str, str] = {
    "/etc/hostname": "vhpc-layer\n",
    "/etc/hosts": "127.0.0.1 localhost vhpc-layer\n::1 localhost ip6-localhost ip6-loopback\n",
}
LAYER_SETUP = "set -e; apt-get clean; rm -rf /var/lib/apt/lists/*"


def cache_root() -> Path:
    """Built trees, UML disks and the private podman store, shared by every checkout of a user."""
    return paths.user_cache() / "layers"


@dataclass(frozen=True)
class LayerRoot:
    """A built root filesystem: ``tree`` is the folder, ``key`` names it (image tags, disk names)."""

    folder: Path
    key: str
    payload: dict
    build_s: float | None = None
    cached: bool = True

    @property
    def tree(self) -> Path:
        return self.folder / "rootfs"

    def to_dict(self) -> dict:
        return {"key": self.key, "folder": str(self.folder), "payload": self.payload, "build_s": self.build_s,
                "cached": self.cached, "prefix": PREFIX}


def _load(folder: Path, cached: bool) -> LayerRoot | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not (folder / "rootfs" / PREFIX.lstrip("/") / "bin" / "mpirun").exists():
        return None
    return LayerRoot(folder=folder, key=data["key"], payload=data.get("payload", {}), build_s=data.get("build_s"),
                     cached=cached)


def layer_key() -> str:
    """Key of the tree this venv would build: the guest recipe, the workload payload and this module's version."""
    import hashlib

    from ..vm.image import default_recipe, image_key
    from ..vm.provision import prepare_payload

    base = image_key(default_recipe(), prepare_payload())
    return hashlib.sha256(f"{base}\0layer{LAYER_VERSION}".encode()).hexdigest()[:16]


def cached_root() -> LayerRoot | None:
    """The tree for this venv's workloads if it was built (None otherwise); never builds."""
    return _load(cache_root() / f"rootfs-{layer_key()}", cached=True)


def build_root(*, timeout: float = 1800.0, log=None) -> LayerRoot:  # noqa: ANN001 - log: Callable[[str], None]
    """The cached layer tree, built first if needed (root; minutes from nothing, instant when cached).

    Raises ``LayerUnavailable`` (exit 2, one line naming the log or the package) when it cannot be built.
    """
    from ..vm.image import _build_base, _building, _lock, _run, default_recipe
    from ..vm.provision import install_into_rootfs, prepare_payload

    if not any(cache_root().glob(f"rootfs-*/{MANIFEST}")):
        _check_can_build()  # nothing cached: say what is missing before the workloads' wheels are fetched
    key = layer_key()
    final = cache_root() / f"rootfs-{key}"
    if (root := _load(final, cached=True)) is not None:
        return root
    _check_can_build()
    started = time.perf_counter()
    if log:
        log("building the layers' root filesystem (debootstrap base of the QEMU guest + workloads) ...")
    try:
        recipe, payload = default_recipe(), prepare_payload()
        with _lock(cache_root() / f".lock-{final.name}"):
            if (root := _load(final, cached=True)) is not None:
                return root
            base = _build_base(recipe, timeout)  # the QEMU guest's base: same recipe, same cache entry
            with _building(final) as tmp:
                build_log = tmp / "build.log"
                tree = tmp / "rootfs"
                _run(["cp", "-a", str(base / "rootfs"), str(tree)], build_log, "copying the base root filesystem",
                     600)
                for path, text in LAYER_FILES.items():
                    target = tree / path.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
                _run(["chroot", str(tree), "/bin/sh", "-c", LAYER_SETUP], build_log, "layer setup in the chroot",
                     300)
                installed = install_into_rootfs(tree, payload, build_log)
                # A layer boots no kernel of its own from this tree (UML brings its own): drop the guest's.
                for pattern in ("boot/vmlinuz-*", "boot/initrd.img-*"):
                    for f in tree.glob(pattern):
                        f.unlink()
                manifest = {"key": key, "payload": installed, "build_s": round(time.perf_counter() - started, 1),
                            "base": base.name, "version": LAYER_VERSION}
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except (VmError, VmUnavailable) as exc:
        raise LayerUnavailable(f"cannot build the layers' root filesystem: {exc.message}", file=exc.file) from None
    except subprocess.TimeoutExpired:
        raise LayerUnavailable(f"building the layers' root filesystem took longer than {timeout:.0f} s") from None
    root = _load(final, cached=False)
    if root is None:
        raise LayerUnavailable("the built layer tree has no readable manifest", file=str(final / MANIFEST))
    prune(keep=KEEP)
    return root


def _check_can_build() -> None:
    if os.geteuid() != 0:
        raise LayerUnavailable("building the layers' root filesystem needs root (debootstrap, chroot)")
    missing = [(tool, pkg) for tool, pkg in (("debootstrap", "debootstrap"), ("chroot", "coreutils"),
                                             ("mkfs.ext4", "e2fsprogs")) if shutil.which(tool) is None]
    if missing:
        raise LayerUnavailable("cannot build the layers' root filesystem: " + ", ".join(t for t, _ in missing)
                               + " not installed: apt-get install " + " ".join(dict.fromkeys(p for _, p in missing)),
                               package=missing[0][1])


def prune(keep: int = KEEP) -> list[Path]:
    """Remove all but the ``keep`` newest built trees (and their UML disks); return what was removed."""
    from ..vm.mounts import remove_tree

    root = cache_root()
    trees = sorted(((f.stat().st_mtime, f) for f in root.glob("rootfs-*") if f.is_dir()), reverse=True)
    removed = []
    for _, folder in trees[keep:]:
        remove_tree(folder)
        removed.append(folder)
        for disk in root.glob(f"uml-{folder.name.removeprefix('rootfs-')}-*.img"):
            disk.unlink()
            removed.append(disk)
    return removed
