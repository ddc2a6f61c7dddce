"""One exception base with structured fields; the CLI turns them into exit codes."""

from __future__ import annotations


class VhpcError(Exception):
    """Base of every error vHPC raises on purpose.

    ``file``/``line``/``key`` locate bad input so the CLI can print one line
    naming the place; ``exit_code`` is what the CLI exits with.
    """

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        if self.key:
            parts.append(self.key)
        return ": ".join(parts)

    def __str__(self) -> str:
        loc = self.location()
        return f"{loc}: {self.message}" if loc else self.message


class InputError(VhpcError):
    """Bad input from the user (inventory, options, logs): exit code 2."""

    exit_code = 2


class InventoryError(InputError):
    """The inventory YAML is invalid. ``problems`` holds every error found in the file (this one first)."""

    def __init__(self, message: str, **kw) -> None:
        super().__init__(message, **kw)
        self.problems: list[InventoryError] = [self]


class InvalidName(InputError):
    """A campaign, environment or run name that is not safe as a folder name."""


class ParseError(InputError):
    """A tool's output does not hold what its parser expects."""


class RemoteError(VhpcError):
    """A command failed on a host (local or over SSH)."""

    def __init__(self, message: str, *, host: str, command: str = "", exit_code: int | None = None,
                 stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.command = command
        self.returncode = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def __str__(self) -> str:
        tail = (self.stderr or self.stdout).strip().splitlines()[-3:]
        detail = f" (exit {self.returncode})" if self.returncode is not None else ""
        last = ("; last output: " + " | ".join(tail)) if tail else ""
        return f"{self.host}: {self.message}{detail}{last}"


class HostUnreachable(RemoteError):
    """A host could not be connected to (refused, timeout, bad key)."""


class ConnectionLost(HostUnreachable):
    """The connection to a host died while a command or job ran (dead link, host down)."""


class StoreError(VhpcError):
    """The raw store refused an operation (e.g. overwriting a complete run)."""


class StageStopped(VhpcError):
    """The same failure on the same host several runs in a row: the stage stops, what was measured is kept."""

    def __init__(self, message: str, *, host: str, result: object = None) -> None:
        super().__init__(message)
        self.host = host
        self.result = result


class MalformedResult(StoreError):
    """A stored ``result.json`` is not the shape vhpc writes: that run is left out of tables and figures."""


class CampaignBusy(InputError):
    """Another vHPC process is writing this campaign (one writer per campaign at a time)."""


class UnsafePath(InputError):
    """A campaign, environment or stage folder of the raw store is a symlink (writes would leave the store)."""


class DataFolderError(InputError):
    """The data folder cannot be written (disk full, read-only, a file where a folder belongs): exit 2."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so running jobs are killed on the way out.

    Not a ``VhpcError``: per-run error handling must never swallow it.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"interrupted by {name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class BuildError(VhpcError):
    """Building a benchmark failed."""


class ChecksumMismatch(VhpcError):
    """A benchmark binary on a host is not the one that was built."""


class TestbedError(VhpcError):
    """The network-namespace testbed could not be created or removed."""

    __test__ = False  # not a pytest test class


class BrowserNotFound(VhpcError):
    """No Chromium/Chrome for static figure export: the machine's setup, said in one line like bad input (exit 2)."""

    exit_code = 2


class NotebookFailed(VhpcError):
    """A stage notebook raised; the message names the notebook, the cell and the error."""


class UnknownReference(InputError):
    """A reference table name that the dataset does not have."""


class SlurmError(VhpcError):
    """A Slurm command or job did not do what vhpc needed (after it was accepted)."""


class SlurmSettingError(InputError):
    """A Slurm setting is invalid, or Slurm refused it (``key`` names the setting)."""


class SlurmUnreachable(InputError):
    """No slurmctld answered the submit host's Slurm commands (wrong SLURM_CONF, controller down)."""


class SlurmJobPending(SlurmError):
    """A job pended longer than the environment allows; it was cancelled."""

    def __init__(self, message: str, *, job_id: str, pending_reason: str | None, waited_s: float) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.pending_reason = pending_reason
        self.waited_s = waited_s


class SlurmJobTimeout(SlurmError):
    """A job ran past vhpc's own timeout for it; it was cancelled."""

    def __init__(self, message: str, *, job_id: str, waited_s: float) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.waited_s = waited_s


class SlurmClusterError(VhpcError):
    """A private Slurm cluster (munged, slurmctld, slurmd) could not be started or stopped."""


def interruption_name(exc: BaseException) -> str:
    """``SIGTERM``/``SIGHUP`` for an ``Interrupted``, ``SIGINT`` for a plain Ctrl-C."""
    import signal

    if isinstance(exc, Interrupted):
        try:
            return signal.Signals(exc.signum).name
        except ValueError:
            return f"signal {exc.signum}"
    return "SIGINT"


class VmError(VhpcError):
    """A QEMU guest could not be built, started, reached or stopped (exit code 1)."""


class VmInputError(InputError):
    """Bad input for a QEMU guest (accelerator, CPUs to pin, image file, name, passthrough device): exit 2."""


class VmUnavailable(VmInputError):
    """This machine cannot do what was asked (not root, no KVM, no IOMMU, tool missing): exit 2."""


class EnvironmentNotReady(InputError):
    """An environment whose provider must bring something up (a guest, a container) is not up as declared:
    one line naming the command that brings it up (exit 2)."""


class GuestNotRunning(EnvironmentNotReady, VmInputError):
    """An inventory's ``vm:`` environment was asked for while its guest is not up as declared (exit 2)."""


class VmNotReady(VmInputError):
    """The guest never answered SSH in time; carries the serial log tail so the user sees why (exit 2)."""

    def __init__(self, message: str, *, serial_tail: str = "", file: str | None = None) -> None:
        super().__init__(message, file=file)
        self.serial_tail = serial_tail


class FigureExportError(VhpcError):
    """Static figure export (PDF/SVG/PNG through Chromium) failed or timed out; the HTML files are written."""


class CloudError(VhpcError):
    """A cloud provider call or a cloud host did not do what ``vhpc cloud`` needed (exit code 1)."""


class CloudInputError(InputError):
    """Bad input for a cloud environment, refused before or by the provider: bad credentials, an unknown
    instance type or image, a guard (``max_instances``, ``max_hours``), no ``--yes`` (exit code 2)."""


class LayerUnavailable(InputError):
    """A virtualization layer (container, user-mode Linux, gVisor) cannot be used here: its program is missing
    (the message names the Debian package), its image cannot be built, or it does not start (exit 2)."""

    def __init__(self, message: str, *, package: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.package = package
