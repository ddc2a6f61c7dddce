"""How long does `make paper-figures` take from committed raw logs (no re-measuring)?

Runs the pipeline on a copy of the committed campaign in a scratch folder (the
repository is not touched), with nothing cached (no executed notebook, no static
export cache): ``paper_figures_s``. Then once more with nothing changed, which is
what a change to the report alone costs (the executed report notebook and the
cached static exports are reused; the report is converted again): ``report_only_s``.
Last line: ``paper_figures_s=X report_only_s=Y``. Targets on a 2-core machine:
at most 10 s (aim 8) and 3 s.
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
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "vhpclib.cli", "paper-figures", "--campaign", campaign,
                                   "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            print(proc.stdout.strip())
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
        folder = Path(tmp, "figures", campaign)
        sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        html = {n: s for n, s in sizes.items() if n.endswith(".html")}
        print(f"{len(sizes)} files in figures/{campaign}/ (report.html included: {'report.html' in sizes}); "
              f"largest HTML {max(html, key=html.get)} {max(html.values()) / 1000:.0f} KB, "
              f"plotly.min.js {sizes.get('plotly.min.js', 0) / 1e6:.1f} MB")
    print(f"paper_figures_s={times[0]:.1f} report_only_s={times[1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
