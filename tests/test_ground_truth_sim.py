"""The stopping rule, fed this machine's recorded run-to-run noise, covers an injected truth (no root, no runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_simulated_intervals_cover_the_injected_truth_and_the_last_line_says_so() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/ground_truth.py"), "--no-real", "--sim-trials",
                          "1000", "--levels", "0,10", "--min-runs", "6", "--max-runs", "23"],
                         capture_output=True, text=True, timeout=300, check=True).stdout.strip().splitlines()
    last = out[-1]
    assert re.fullmatch(r"coverage_real=nan coverage_sim=[0-9.]+ detected_5pct=0/0 detected_10pct=0/0 "
                        r"false_positive_aa=0/0 median_machine_s_10pct=nan", last), last
    assert float(re.search(r"coverage_sim=([0-9.]+)", last)[1]) >= 0.94  # nominal 95 %, Bonferroni over looks
    aa = next(line for line in out if line.startswith("sim loss=0%"))
    covered, trials = map(int, re.search(r"covered (\d+)/(\d+)", aa).groups())
    assert trials == 1000 and covered >= 940
