"""``config/make.def`` for NPB3.3-MZ-MPI and NPB3.4-MZ-MPI, with the variables their makefiles read.

Read from the real trees (NPB3.3.1-MZ and NPB3.4-MZ: ``config/make.def.template``,
``sys/make.common``, ``sys/Makefile`` and each benchmark's ``Makefile``):

- 3.3 compiles with ``$(F77) -c $(F_INC) $(FFLAGS)``, 3.4 with ``$(FC) -c $(F_INC) $(FFLAGS)``
  (3.4 renamed F77 to FC); nothing else names the Fortran compiler, so a make.def
  without it falls back to GNU make's built-in ``f77``;
- both link with ``$(FLINK) $(FLINKFLAGS) -o $(PROGRAM) $(OBJS) $(F_LIB)``;
- ``$(CC) -c $(C_INC) $(CFLAGS)`` compiles C files of ``common/`` (no MZ benchmark links one);
- ``sys/Makefile`` compiles the ``setparams`` utility with ``$(UCC)``;
- binaries go to ``$(BINDIR)`` (relative to a benchmark folder), which no makefile creates;
- ``RAND`` names the random number generator of ``common/``.

``setparams`` copies the *text* of F77/FC, FLINK, F_LIB, F_INC, FFLAGS, FLINKFLAGS and RAND
into ``npbparams.h`` and the binary prints it under "Compile options" (see
``compile_options``). Every value is therefore written out literally (``FLINK = mpif90``,
not ``$(F77)``): what the log prints is what make ran.
"""

from __future__ import annotations

import re

from ..exceptions import InputError

VERSIONS = ("3.3", "3.4")

#: The variable naming the Fortran compiler in each version's make.common.
COMPILER_VARIABLE = {"3.3": "F77", "3.4": "FC"}

#: Variables every generated make.def defines, per NPB-MZ version (checked by the tests).
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    version: (fc, "FLINK", "F_LIB", "F_INC", "FFLAGS", "FLINKFLAGS", "CC", "CLINK", "C_LIB", "C_INC", "CFLAGS",
              "CLINKFLAGS", "UCC", "BINDIR", "RAND")
    for version, fc in COMPILER_VARIABLE.items()
}

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _check_value(name: str, value: str) -> str:
    """A value make and NPB's setparams both take as written, or ``InputError``."""
    value = value.strip()
    key = f"benchmarks.npb.{name.lower()}"
    # A newline starts a new make rule and '#' cuts the value: both silently change the build.
    if "\n" in value or "\r" in value or "#" in value:
        raise InputError(f"{name} may not contain a newline or '#': {value!r}", key=key)
    # setparams writes the value between single quotes into npbparams.h (a quote breaks the
    # Fortran) and refuses continued lines; a make reference or shell expansion would be printed
    # as written under "Compile options", not as it ran.
    if "'" in value or "$" in value or "`" in value or value.endswith("\\"):
        raise InputError(f"{name} may not contain a quote, '$', '`' or end with '\\' (NPB's setparams copies "
                         f"it verbatim into the binary's 'Compile options'): {value!r}", key=key)
    return value


def make_def(version: str, fc: str, fflags: str, *, flinkflags: str | None = None, f_lib: str = "",
             f_inc: str = "", cc: str = "cc", cflags: str = "-O3", ucc: str = "cc", bindir: str = "../bin",
             rand: str = "randi8") -> str:
    """The text of ``config/make.def`` for ``version`` ("3.3" or "3.4").

    ``fc`` is the MPI Fortran wrapper (``mpif90``, ``mpiifort``, ...) and also links; link
    flags default to the compile flags because OpenMP (``-fopenmp``) must reach the linker.
    ``cc``/``cflags`` would compile C files of ``common/`` (the MZ benchmarks have none) and
    ``ucc`` compiles ``sys/setparams``.
    """
    if version not in VERSIONS:
        raise InputError(f"NPB-MZ version must be one of {', '.join(VERSIONS)}, got {version!r}",
                         key="benchmarks.npb.version")
    fc = _check_value("fc", fc)
    if not fc:
        raise InputError("the Fortran compiler is empty", key="benchmarks.npb.fc")
    fflags = _check_value("fflags", fflags)
    link = _check_value("flinkflags", fflags if flinkflags is None else flinkflags)
    lib, inc, cc_value, cflags_value, ucc_value, bindir_value, rand_value = (
        _check_value(n, v) for n, v in (("f_lib", f_lib), ("f_inc", f_inc), ("cc", cc), ("cflags", cflags),
                                        ("ucc", ucc), ("bindir", bindir), ("rand", rand)))
    for name, value in (("ucc", ucc_value), ("bindir", bindir_value), ("rand", rand_value)):
        if not value:
            raise InputError(f"{name} is empty", key=f"benchmarks.npb.{name}")
    compiler = COMPILER_VARIABLE[version]
    text = (
        f"#---------------------------------------------------------------------------\n"
        f"# config/make.def for NPB{version}-MZ-MPI, written by vhpc (vhpclib.npb).\n"
        f"# Regenerated for every build: edit the inventory (benchmarks.npb), not this file.\n"
        f"# Values are literal: setparams copies them into the binary's 'Compile options'.\n"
        f"#---------------------------------------------------------------------------\n"
        f"# Fortran compiler (sys/make.common: $({compiler}) -c $(F_INC) $(FFLAGS)) and linker\n"
        f"{compiler} = {fc}\n"
        f"FLINK = {fc}\n"
        f"# -L/-l arguments for linking, -I arguments for compiling (empty: the wrapper knows)\n"
        f"F_LIB = {lib}\n"
        f"F_INC = {inc}\n"
        f"# Compile-time and link-time flags\n"
        f"FFLAGS = {fflags}\n"
        f"FLINKFLAGS = {link}\n"
        f"# C compiler for C files of common/ (no MZ benchmark links one)\n"
        f"CC = {cc_value}\n"
        f"CLINK = {cc_value}\n"
        f"C_LIB =\n"
        f"C_INC =\n"
        f"CFLAGS = {cflags_value}\n"
        f"CLINKFLAGS = {cflags_value}\n"
        f"# C compiler for the build utility sys/setparams\n"
        f"UCC = {ucc_value}\n"
        f"# Destination of executables, relative to the benchmark folders (the build creates it)\n"
        f"BINDIR = {bindir_value}\n"
        f"# Random number generator of common/\n"
        f"RAND = {rand_value}\n"
    )
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def parse_make_def(text: str) -> dict[str, str]:
    """Variable assignments of a make.def (``NAME = value``), comments and blank lines skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        match = _ASSIGN.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out
