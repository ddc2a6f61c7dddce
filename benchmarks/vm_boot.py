"""How long does a QEMU guest take: image build from nothing, a cached build, boot to SSH? (root)

Targets on a 2-core machine with TCG: build <= 240 s, cached <= 2 s, boot to SSH <= 45 s.
The build runs into a fresh temporary cache (debootstrap downloads from this machine's
apt mirror, then Intel MPI, IMB and blockss are installed), so nothing cached is reused
unless ``--reuse-cache`` is given (then the build time is the cached image's recorded one).
The guest (2 vCPUs pinned to CPUs 0,1 unless ``--pin none``) is booted from that image,
timed from ``up`` to SSH answering with its host key, and taken down.
The last line is ``image_build_s=X image_cached_s=Y vm_ready_s=Z``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-cache", action="store_true", help="use the per-user image cache as it is")
    parser.add_argument("--pin", default="0,1", help="--pin of vm up (default 0,1)")
    parser.add_argument("--accel", default="auto")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("vm_boot: needs root (debootstrap, QEMU)", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="vhpc-vm-bench-"))
    if not args.reuse_cache:
        os.environ["XDG_CACHE_HOME"] = str(scratch / "cache")  # read by vhpclib.paths.user_cache() at each call

    from vhpclib import paths
    from vhpclib.vm import lifecycle
    from vhpclib.vm.image import build_image

    paths.VMS = scratch / "vms"
    paths.INVENTORIES = scratch / "inventories"
    name = f"bench{os.getpid() % 100000}"
    try:
        t0 = time.perf_counter()
        image = build_image()
        build_s = image.build_s if image.cached else time.perf_counter() - t0
        print(f"image: {image.folder} ({'cached, recorded build time' if image.cached else 'built now'})")
        t0 = time.perf_counter()
        again = build_image()
        cached_s = time.perf_counter() - t0
        assert again.cached
        t0 = time.perf_counter()
        info = lifecycle.up(name, vcpus=2, memory_mib=2048, accel=args.accel, pin=args.pin)
        ready_s = time.perf_counter() - t0
        print(f"guest: {info.vmm} ({info.accel_reason}); vCPU map {info.vcpu_map}")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (the 2 cores are shared)")
    finally:
        try:
            lifecycle.down(name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"image_build_s={build_s:.1f} image_cached_s={cached_s:.3f} vm_ready_s={ready_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
