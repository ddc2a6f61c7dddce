"""``config/make.def`` for NPB3.3-MZ-MPI and NPB3.4-MZ-MPI, written from the inventory.

The two versions name the Fortran compiler differently: 3.3 uses ``MPIF77``
(every MZ benchmark is Fortran 77), 3.4 uses ``MPIFC`` (Fortran 90 sources).
Both link with ``FLINK`` and take ``FMPI_LIB``/``FMPI_INC``/``FFLAGS``/
``FLINKFLAGS``; ``CC`` only compiles NPB's small C utilities (setparams).
"""

from __future__ import annotations

import re

from ..exceptions import InputError

VERSIONS = ("3.3", "3.4")

#: Variables every generated make.def defines, per NPB-MZ version (checked by the tests).
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    "3.3": ("MPIF77", "FLINK", "FMPI_LIB", "FMPI_INC", "FFLAGS", "FLINKFLAGS", "CC", "BINDIR", "RAND"),
    "3.4": ("MPIFC", "FC", "FLINK", "FMPI_LIB", "FMPI_INC", "FFLAGS", "FLINKFLAGS", "CC", "BINDIR"),
}

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _check_value(name: str, value: str) -> str:
    # A newline would start a new make rule and '#' would cut the value: both silently change the build.
    if "\n" in value or "\r" in value or "#" in value:
        raise InputError(f"{name} may not contain a newline or '#': {value!r}", key=f"benchmarks.npb.{name.lower()}")
    return value.strip()


def make_def(version: str, fc: str, fflags: str, *, flinkflags: str | None = None, fmpi_lib: str = "",
             fmpi_inc: str = "", cc: str = "cc -g", bindir: str = "../bin") -> str:
    """The text of ``config/make.def`` for ``version`` ("3.3" or "3.4").

    ``fc`` is the MPI Fortran wrapper (``mpif90``, ``mpiifort``, ...); link flags default to
    the compile flags because OpenMP (``-fopenmp``) must be given at link time too.
    """
    if version not in VERSIONS:
        raise InputError(f"NPB-MZ version must be one of {', '.join(VERSIONS)}, got {version!r}",
                         key="benchmarks.npb.version")
    fc = _check_value("fc", fc)
    if not fc:
        raise InputError("the Fortran compiler is empty", key="benchmarks.npb.fc")
    fflags = _check_value("fflags", fflags)
    link = _check_value("flinkflags", fflags if flinkflags is None else flinkflags)
    lib, inc, cc_value = (_check_value(n, v) for n, v in (("fmpi_lib", fmpi_lib), ("fmpi_inc", fmpi_inc), ("cc", cc)))
    head = (f"#---------------------------------------------------------------------------\n"
            f"# config/make.def for NPB{version}-MZ-MPI, written by vhpc (vhpclib.npb).\n"
            f"# Regenerated for every build: edit the inventory (benchmarks.npb), not this file.\n"
            f"#---------------------------------------------------------------------------\n")
    if version == "3.3":
        compiler = (f"# Fortran compiler for MPI programs, and the linker\n"
                    f"MPIF77 = {fc}\n"
                    f"FLINK = $(MPIF77)\n")
    else:
        compiler = (f"# Fortran compiler for MPI programs (FC for the makefiles that use it), and the linker\n"
                    f"MPIFC = {fc}\n"
                    f"FC = $(MPIFC)\n"
                    f"FLINK = $(MPIFC)\n")
    body = (f"# Passed to the linker and to the compiler to find MPI (empty: the wrapper knows)\n"
            f"FMPI_LIB = {lib}\n"
            f"FMPI_INC = {inc}\n"
            f"# Compile-time and link-time flags\n"
            f"FFLAGS = {fflags}\n"
            f"FLINKFLAGS = {link}\n"
            f"# C compiler for the build utilities (sys/setparams)\n"
            f"CC = {cc_value}\n"
            f"# Destination of executables, relative to the benchmark directories\n"
            f"BINDIR = {bindir}\n")
    tail = "# Random number generator of the NPB 3.3 sources\nRAND = randi8\n" if version == "3.3" else ""
    return "\n".join(line.rstrip() for line in (head + compiler + body + tail).splitlines()) + "\n"


def parse_make_def(text: str) -> dict[str, str]:
    """Variable assignments of a make.def (``NAME = value``), comments and blank lines skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        match = _ASSIGN.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out
