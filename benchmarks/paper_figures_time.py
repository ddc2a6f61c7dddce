"""How long does `make paper-figures` take from committed raw logs (no re-measuring)?

Runs the pipeline on a copy of the committed campaign in a scratch folder (the
repository is not touched) and prints as its last line ``paper_figures_s=X``.
Target: at most 60 s on a 2-core machine; aim for 20 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    campaign = sys.argv[1] if len(sys.argv) > 1 else "embedded"
    with tempfile.TemporaryDirectory(prefix="vhpc-figtime-") as tmp:
        shutil.copytree(ROOT / "data/raw" / campaign, Path(tmp) / "data/raw" / campaign)
        env = {**os.environ, "VHPC_DATA": f"{tmp}/data", "VHPC_FIGURES": f"{tmp}/figures",
               "VHPC_EXECUTED": f"{tmp}/executed"}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "vhpclib.pipeline", "--campaign", campaign], cwd=ROOT,
                              env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        print("\n".join(line for line in proc.stdout.splitlines() if "IPKernelApp" not in line))
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        files = sorted(p.name for p in Path(tmp, "figures").iterdir())
        print(f"{len(files)} files in figures/ (report.html included: {'report.html' in files})")
    print(f"paper_figures_s={elapsed:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
