"""NPB Multi-Zone: build once on one host, distribute with checksums, run everywhere.

``makedef`` writes config/make.def (NPB3.3-MZ / NPB3.4-MZ variables), ``compile_options``
predicts and checks the "Compile options" a binary prints, ``build`` makes the binaries
(checking which compiler ran) and stores them with their sha256, ``builds`` reads stored
builds back, ``distribute`` copies them to hosts and verifies them before every run,
``campaign`` ties them to inventory environments (``built_in``: run another environment's
build). The runs themselves are the ``npb`` workload (``vhpclib.workloads.npb``).
"""

from ..fsutil import sha256_file
from .build import CLASSES, DEMO_BENCHMARK, NPB_BENCHMARKS, BuildTarget, build_env, build_npb, build_targets
from .builds import STAGE, BuiltBinary, NpbBuild, latest_build, load_build, matching_build, successful_builds
from .compile_options import (compile_option_mismatches, expected_compile_options, npbparams_compile_options,
                              printed_compile_options)
from .campaign import (build_environment_of, build_for, build_in_environment, distribute_to_environment,
                       npb_spec)
from .distribute import Deployment, distribute, install_dir, sha256_on_host, verify_binary, verify_deployment
from .makedef import REQUIRED_VARIABLES, make_def, parse_make_def

__all__ = [
    "CLASSES", "DEMO_BENCHMARK", "NPB_BENCHMARKS", "STAGE", "BuildTarget", "build_env", "build_npb", "build_targets",
    "sha256_file", "BuiltBinary", "Deployment", "NpbBuild", "distribute", "install_dir", "latest_build",
    "load_build", "matching_build", "successful_builds", "sha256_on_host", "verify_binary", "verify_deployment",
    "REQUIRED_VARIABLES", "make_def", "parse_make_def", "build_environment_of", "build_for",
    "build_in_environment", "distribute_to_environment", "npb_spec", "compile_option_mismatches",
    "expected_compile_options", "npbparams_compile_options", "printed_compile_options",
]
