"""The paper's published numbers (SACSIS 2011) as tidy DataFrames.

The CSV files live in ``data/reference/sacsis2011/`` (see its README.md); this
module only loads and validates them, so notebooks and figures never hard-code
a paper value.
"""

from __future__ import annotations

import pandas as pd

from vhpclib import paths
from vhpclib.exceptions import InputError, UnknownReference

DATASET = "sacsis2011"
REFERENCE_DIR = paths.REFERENCE / DATASET

#: Names accepted by :func:`load_reference` (the CSV file stems).
REFERENCE_NAMES: tuple[str, ...] = (
    "latency", "throughput_peak", "single_node", "overhead_stated", "efficiency",
    "io_10gbe", "environments", "claims",
)

#: The paper's environment labels, in the order of its tables.
PAPER_ENVIRONMENTS: tuple[str, ...] = ("BMM", "Xen", "KVM", "EC2")

#: Measured workload name -> the paper's name (blockss stands in for Bloss).
WORKLOAD_TO_PAPER: dict[str, str] = {"blockss": "Bloss", "SP-MZ": "SP-MZ", "BT-MZ": "BT-MZ",
                                     "LU-MZ": "LU-MZ"}

_REQUIRED = {
    "latency": ["environment", "placement", "latency_usec", "ratio_to_intra_socket", "source"],
    "throughput_peak": ["environment", "placement", "peak_gbytes_per_sec", "qualifier", "source"],
    "single_node": ["environment", "workload", "time_s", "published_value", "published_unit",
                    "nprocs", "threads_per_proc", "source"],
    "overhead_stated": ["workload", "environment", "overhead_pct", "source"],
    "efficiency": ["workload", "environment", "nprocs", "nodes", "base_nprocs", "efficiency_pct",
                   "source"],
    "io_10gbe": ["configuration", "environment", "throughput_mbytes_per_sec", "message_bytes",
                 "source"],
    "environments": ["label", "description", "vmm", "vcpu_pinning", "hardware"],
    "claims": ["claim_id", "environment", "quantity", "value", "unit", "qualifier", "text",
               "source"],
}


def load_reference(name: str) -> pd.DataFrame:
    """Load one reference table by name (see ``REFERENCE_NAMES``).

    Raises ``UnknownReference`` for a name not in the dataset and ``InputError``
    naming the file and column when a CSV lost a required column.
    """
    if name not in REFERENCE_NAMES:
        raise UnknownReference(f"no reference table {name!r}; known: {', '.join(REFERENCE_NAMES)}",
                               key=name)
    path = REFERENCE_DIR / f"{name}.csv"
    # Text columns stay text (empty -> ""), numbers stay numbers.
    df = pd.read_csv(path, keep_default_na=False, na_values={
        c: [""] for c in ("latency_usec", "value", "efficiency_pct", "time_s")})
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", file=str(path), key=name)
    return df


def paper_label(label: str) -> str | None:
    """The paper's label for a measured environment label (case-insensitive), or None.

    ``"kvm"`` -> ``"KVM"``; ``"local"`` -> None (the paper has no such environment).
    """
    for env in PAPER_ENVIRONMENTS:
        if str(label).strip().lower() == env.lower():
            return env
    return None


def paper_workload(workload: str) -> str:
    """The paper's name of a measured workload (``blockss`` -> ``Bloss``)."""
    return WORKLOAD_TO_PAPER.get(workload, workload)
