"""Guest images: a Debian image built with debootstrap, or a user's own qcow2 cloud image.

The built image is cached in the per-user cache (``~/.cache/vhpc/vm/<hash>/``)
keyed by a hash of its recipe (suite, mirror, packages, guest files), so a
second ``build`` is instant. It is built in a hidden temporary folder renamed
into place when complete: an interrupted build never looks cached. Guests never
write to it (each boots a copy-on-write overlay), and the disk is made read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import VmError, VmInputError, VmUnavailable
from ..sshd import generate_keys
from .apt_sources import debian_mirror
from .cache import cache_root
from .guest_ssh import HOST_KEY_BEGIN, HOST_KEY_END
from .mounts import remove_tree, unmount_below
from .provision import Payload, install_into_rootfs, prepare_payload

SUITE = "bookworm"  # Debian 12: python3 3.11, the same ABI as the wheels made on the host
RECIPE_VERSION = 1
DISK_SIZE = "3G"
MANIFEST = "manifest.json"
KEEP_IMAGES = 2  # built images kept in the cache (one per blockss / Intel MPI / recipe version)
# What a guest needs: SSH, python3 (+ venv for the blockss wheelhouse), a kernel and an initramfs
# made in the chroot (virtio and ext4 are modules), systemd-networkd for DHCP, tools the
# fingerprint reads (lscpu in util-linux, systemd-detect-virt, lspci).
PACKAGES = (
    "openssh-server", "python3", "python3-venv", "ca-certificates", "systemd-sysv", "udev", "iproute2",
    "procps", "kmod", "pciutils", "libnss-myhostname", "zstd", "initramfs-tools", "linux-base",
    "linux-image-amd64",
)

# Files written into the root filesystem. The SSH host key is made at first boot (never baked into
# the image: two guests must not share one) and printed on the serial console, where `up` reads it.
GUEST_FILES: dict[str, str] = {
    # No fsck pass: the root is a fresh overlay every boot, and waiting for it cost seconds under TCG.
    "/etc/fstab": "/dev/vda / ext4 defaults,noatime 0 0\n",
    "/etc/hostname": "vhpc-guest\n",
    "/etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    # QEMU user networking always gives the guest 10.0.2.15/24 (gateway 10.0.2.2): a static address comes up
    # at once, where DHCP through systemd-networkd took ~9 s of an emulated boot.
    "/etc/systemd/system/vhpc-net.service": (
        "[Unit]\nDescription=vHPC: eth0 at QEMU user networking's fixed address\nDefaultDependencies=no\n"
        "Wants=network.target sys-subsystem-net-devices-eth0.device\n"
        "After=sys-subsystem-net-devices-eth0.device\nBefore=network.target\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/sbin/ip -batch /etc/vhpc-net.ip\n\n"
        "[Install]\nWantedBy=multi-user.target\n"),
    # One `ip` process for all of it: every exec costs about a second in an emulated guest on a busy host.
    "/etc/vhpc-net.ip": ("link set lo up\naddress add 10.0.2.15/24 dev eth0\nlink set eth0 up\n"
                         "route add default via 10.0.2.2\n"),
    "/etc/ssh/sshd_config.d/vhpc.conf": (
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 50:30:100\nMaxSessions 50\n"),
    "/etc/systemd/system/vhpc-hostkey.service": (
        "[Unit]\nDescription=vHPC: make this guest's SSH host key and show it on the serial console\n"
        "Before=ssh.service\n\n[Service]\nType=oneshot\n"
        "ExecStart=/bin/sh -c '[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N \"\" "
        "-f /etc/ssh/ssh_host_ed25519_key; { echo; echo \"" + HOST_KEY_BEGIN + "\"; "
        "cat /etc/ssh/ssh_host_ed25519_key.pub; echo \"" + HOST_KEY_END + "\"; } > /dev/ttyS0'\n\n"
        "[Install]\nWantedBy=multi-user.target\nRequiredBy=ssh.service\n"),
}
# Run in the chroot after the files are written (offline: systemctl only makes symlinks).
GUEST_SETUP = (
    "set -e; systemctl enable ssh vhpc-net vhpc-hostkey; "
    "systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service e2scrub_all.timer "
    "getty-static.service getty@tty1.service; "
    "rm -f /etc/ssh/ssh_host_*; apt-get clean; rm -rf /var/lib/apt/lists/*"
)


# Written before debootstrap, so the kernel package's first initramfs is already the small one: only the
# virtio and ext4 modules a guest boots from (MODULES=most made a 30 MB initramfs and slowed TCG boots).
INITRAMFS_FILES: dict[str, str] = {
    "/etc/initramfs-tools/conf.d/vhpc.conf": "MODULES=list\n",
    "/etc/initramfs-tools/hooks/vhpc-virtio": (
        "#!/bin/sh\nPREREQ=\"\"\nprereqs() { echo \"$PREREQ\"; }\n"
        "case \"$1\" in prereqs) prereqs; exit 0;; esac\n. /usr/share/initramfs-tools/hook-functions\n"
        "manual_add_modules virtio_pci virtio_blk virtio_net virtio_scsi ext4 crc32c_generic\n"),
}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a built image but the workloads: the base (debootstrap) and the guest's files."""

    suite: str
    mirror: str
    packages: tuple[str, ...]
    disk_size: str = DISK_SIZE
    files: tuple[tuple[str, str], ...] = tuple(sorted(GUEST_FILES.items()))
    initramfs: tuple[tuple[str, str], ...] = tuple(sorted(INITRAMFS_FILES.items()))
    setup: str = GUEST_SETUP
    version: int = RECIPE_VERSION

    def base_digest(self) -> str:
        """Key of the debootstrap layer: what is downloaded and installed."""
        text = json.dumps({"suite": self.suite, "mirror": self.mirror, "packages": list(self.packages),
                           "initramfs": [list(f) for f in self.initramfs], "version": self.version}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def digest(self) -> str:
        """Key of the whole recipe: the base plus the guest's own files, setup and disk size."""
        text = json.dumps({"base": self.base_digest(), "disk_size": self.disk_size,
                           "files": [list(f) for f in self.files], "setup": self.setup}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: a disk (raw or qcow2) and, for built images, the kernel and initramfs to boot.

    ``client_key`` logs in as root (built images authorize it at build time; user
    images through the cloud-init seed made at ``up``). ``provisioned`` is what
    the image already holds of the workloads (built images: everything).
    """

    kind: str  # "built" | "user"
    folder: Path
    disk: Path
    disk_format: str
    client_key: Path
    kernel: Path | None = None
    initrd: Path | None = None
    recipe_hash: str | None = None
    build_s: float | None = None
    cached: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def needs_seed(self) -> bool:
        return self.kind == "user"

    @property
    def provisioned(self) -> dict | None:
        return self.extra.get("payload")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "folder": str(self.folder), "disk": str(self.disk), "disk_format": self.disk_format,
                "client_key": str(self.client_key), "kernel": str(self.kernel) if self.kernel else None,
                "initrd": str(self.initrd) if self.initrd else None, "recipe_hash": self.recipe_hash,
                "build_s": self.build_s}


def default_recipe() -> Recipe:
    return Recipe(suite=SUITE, mirror=debian_mirror(SUITE), packages=PACKAGES)


def _load(folder: Path, cached: bool) -> GuestImage | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    disk = folder / data["disk"]
    if not disk.is_file():
        return None
    return GuestImage(kind=data["kind"], folder=folder, disk=disk, disk_format=data["disk_format"],
                      client_key=folder / data["client_key"],
                      kernel=folder / data["kernel"] if data.get("kernel") else None,
                      initrd=folder / data["initrd"] if data.get("initrd") else None,
                      recipe_hash=data.get("recipe_hash"), build_s=data.get("build_s"), cached=cached,
                      extra=data.get("extra", {}))


def image_key(recipe: Recipe, payload: Payload) -> str:
    """Cache key of a built image: its base recipe and the workloads installed into it."""
    return hashlib.sha256(f"{recipe.digest()}\0{payload.digest()}".encode()).hexdigest()[:16]


def cached_image(recipe: Recipe | None = None, payload: Payload | None = None) -> GuestImage | None:
    """The cached built image (default recipe, this venv's workloads), or None if it was never built."""
    recipe = recipe or default_recipe()
    payload = payload or prepare_payload()
    return _load(cache_root() / image_key(recipe, payload), cached=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One builder per cache entry: a second ``build`` waits and then finds the image cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(argv: list[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VmError(f"{what} did not finish within {timeout:.0f} s", file=str(log)) from None
    if done.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise VmError(f"{what} failed (exit {done.returncode}): {tail}", file=str(log))


def _require_build_tools() -> None:
    missing = [f"{tool} ({pkg})" for tool, pkg in (("debootstrap", "debootstrap"), ("mkfs.ext4", "e2fsprogs"),
                                                   ("chroot", "coreutils")) if shutil.which(tool) is None]
    if missing:
        raise VmUnavailable("cannot build a guest image, missing: " + ", ".join(missing))


def _remove_stale_builds(root: Path) -> None:
    """Temporary folders of builds that died (their PID is gone): unmounted, then removed."""
    for tmp in root.glob(".build-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[-1])
        except ValueError:
            continue
        if not Path(f"/proc/{pid}").exists():
            remove_tree(tmp)


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    """A temporary sibling of ``final`` renamed into place only when the body finishes."""
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    tmp = root / f".build-{final.name}-{os.getpid()}"
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.rename(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise


def build_image(*, recipe: Recipe | None = None, payload: Payload | None = None,
                timeout: float = 1200.0) -> GuestImage:
    """The cached guest image, built first if needed (root; ~3 min from scratch, then instant).

    Two cached layers: the base root filesystem (debootstrap, keyed by the
    recipe) and the image (base + this venv's Intel MPI, IMB and blockss, keyed
    by both), so a changed blockss rebuilds only the second layer. Raises
    ``VmUnavailable`` without root or tools, ``VmError`` naming the log when a
    step fails; nothing half-built is ever left in the cache.
    """
    started = time.perf_counter()
    recipe = recipe or default_recipe()
    payload = payload or prepare_payload()
    final = cache_root() / image_key(recipe, payload)
    if (image := _load(final, cached=True)) is not None:
        return image
    if os.geteuid() != 0:
        raise VmUnavailable("building a guest image needs root (debootstrap, chroot); run `vhpc vm build` as root")
    _require_build_tools()
    with _lock(cache_root() / f".lock-{final.name}"):
        if (image := _load(final, cached=True)) is not None:
            return image  # another process built it while we waited
        base = _build_base(recipe, timeout)
        with _building(final) as tmp:
            _build_image_into(tmp, base, recipe, payload)
            manifest = json.loads((tmp / MANIFEST).read_text())
            manifest["build_s"] = round(time.perf_counter() - started, 1)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    image = _load(final, cached=False)
    if image is None:
        raise VmError("built image has no readable manifest", file=str(final / MANIFEST))
    prune_images(keep=KEEP_IMAGES)
    return image


def prune_images(keep: int = 2) -> list[Path]:
    """Remove all but the ``keep`` newest built images (~1 GB each) and bases; return what was removed.

    A guest still running from a removed image keeps working (QEMU holds the
    file open); bases and downloaded packages are kept, so a rebuild is quick.
    """
    images = []
    for folder in cache_root().iterdir() if cache_root().is_dir() else []:
        image = _load(folder, cached=True) if len(folder.name) == 16 else None
        if image is not None and image.kind == "built":
            images.append((folder.stat().st_mtime, folder))
    bases = [(f.stat().st_mtime, f) for f in cache_root().glob("base-*") if f.is_dir()]
    removed = []
    for _, folder in sorted(images, reverse=True)[keep:] + sorted(bases, reverse=True)[keep:]:
        remove_tree(folder)
        removed.append(folder)
    return removed


def _build_base(recipe: Recipe, timeout: float) -> Path:
    """The cached base root filesystem of ``recipe`` (debootstrap + guest files), built if missing."""
    final = cache_root() / f"base-{recipe.base_digest()}"
    if (final / "rootfs" / "etc" / "os-release").exists():
        return final
    with _lock(cache_root() / f".lock-base-{recipe.base_digest()}"), _building(final) as tmp:
        log = tmp / "build.log"
        rootfs = tmp / "rootfs"
        for path, text in recipe.initramfs:
            target = rootfs / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            if "/hooks/" in path:
                target.chmod(0o755)
        debs = cache_root() / "debs"  # downloaded packages, reused when a changed recipe is rebuilt
        debs.mkdir(parents=True, exist_ok=True)
        try:
            _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
                  "--include=" + ",".join(recipe.packages), recipe.suite, str(rootfs), recipe.mirror],
                 log, "debootstrap", timeout)
        finally:
            unmount_below(rootfs)  # debootstrap mounts /proc and /sys in the target; never leave them
        if not sorted((rootfs / "boot").glob("vmlinuz-*")) or not sorted((rootfs / "boot").glob("initrd.img-*")):
            raise VmError("debootstrap made no kernel or initramfs in /boot", file=str(log))
    return final


def _build_image_into(tmp: Path, base: Path, recipe: Recipe, payload: Payload) -> None:
    log = tmp / "build.log"
    rootfs = tmp / "rootfs"
    _run(["cp", "-a", str(base / "rootfs"), str(rootfs)], log, "copying the base root filesystem", 600)
    for path, text in recipe.files:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _run(["chroot", str(rootfs), "/bin/sh", "-c", recipe.setup], log, "guest setup in the chroot", 300)
    keys = generate_keys(tmp / "keys")
    ssh_dir = rootfs / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(keys.client_pub.read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    installed = install_into_rootfs(rootfs, payload, log)
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    shutil.copy2(kernels[-1], tmp / "vmlinuz")
    shutil.copy2(initrds[-1], tmp / "initrd.img")
    disk = tmp / "disk.raw"
    _run(["truncate", "-s", recipe.disk_size, str(disk)], log, "truncate", 60)
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(disk)], log, "mkfs.ext4", 600)
    remove_tree(rootfs)
    disk.chmod(0o444)  # guests boot overlays on it; nothing may write here
    for name in ("client_ed25519", "client_ed25519.pub"):
        shutil.copy2(keys.client_key.parent / name, tmp / name)
    (tmp / "client_ed25519").chmod(0o600)
    remove_tree(tmp / "keys")
    manifest = {"kind": "built", "disk": "disk.raw", "disk_format": "raw", "client_key": "client_ed25519",
                "kernel": "vmlinuz", "initrd": "initrd.img", "recipe_hash": recipe.digest(),
                "extra": {"suite": recipe.suite, "mirror": recipe.mirror, "packages": list(recipe.packages),
                          "kernel_file": kernels[-1].name, "payload": installed}}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


# ------------------------------------------------------------------ user images

def qemu_img_info(path: Path) -> dict:
    """``qemu-img info`` of a disk image as a dict; ``VmInputError`` if it is not an image QEMU reads."""
    done = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise VmInputError(f"not a disk image QEMU can read: {done.stderr.strip().splitlines()[-1:] or ['?']}",
                           file=str(path))
    return json.loads(done.stdout)


def user_image(path: str | Path) -> GuestImage:
    """Register a user's own qcow2 cloud image (cloud-init NoCloud): checked, never copied or modified.

    Its client key lives in ``~/.cache/vhpc/vm/user-<hash>/``; the seed that
    authorizes it is made per guest at ``up``. ``VmInputError`` when the file is
    missing or not qcow2.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise VmInputError("image file does not exist", file=str(path), key="--image")
    info = qemu_img_info(path)
    if info.get("format") != "qcow2":
        raise VmInputError(f"image format is {info.get('format')!r}, expected a qcow2 cloud image",
                           file=str(path), key="--image")
    stat = path.stat()
    digest = hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_root() / f"user-{digest}"
    if (image := _load(folder, cached=True)) is not None:
        return image
    folder.mkdir(parents=True, exist_ok=True)
    keys = generate_keys(folder / "keys")
    manifest = {"kind": "user", "disk": str(path), "disk_format": "qcow2",
                "client_key": "keys/client_ed25519", "recipe_hash": digest,
                "extra": {"source": str(path), "virtual_size": info.get("virtual-size")}}
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST)
    assert keys.client_key.is_file()
    image = _load(folder, cached=False)
    assert image is not None
    return image
