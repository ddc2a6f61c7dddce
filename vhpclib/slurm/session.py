"""One Slurm job in one command on the submit host: submit, wait, account, collect.

Every command to a login node over SSH costs a round trip and a shell start
(a user's ``.bashrc`` with module or pyenv set-up can take a good part of a
second), so the whole life of a job is one shell program run on the submit
host, and vhpc reads its output once:

1. the job script is written into the job folder, then submitted:
   ``sbatch --parsable`` (``submission: batch``) or ``salloc ... bash job.sbatch``
   in the background (``submission: allocation``: allocated at once when the
   nodes are free; Slurm's scheduler starts batch jobs on its next pass, up to a
   second later);
2. the program waits where the job is: squeue polls at intervals growing with
   the time waited (a tenth of it, from 0.1 s up to ``poll_interval_s``), or the
   salloc process itself; it cancels a job pending past ``pending_limit_s`` or
   running past vhpc's timeout;
3. a file ``.cancel`` in the job folder (what vhpc writes when it is interrupted),
   any byte on its standard input, or its end (the SSH session gone) cancel the
   job: nothing runs unattended;
4. once the job has ended: its sacct record (``sacct --completion`` without
   slurmdbd; asked once only when squeue gave up on slurmctld, which writes it),
   then every output file base64-encoded, then the job folder removed.

Its output is ``@@vhpc <event> ...`` lines (``parse_session``). The program is
pure text built here; ``jobs.run_batch_job`` runs it.
"""

from __future__ import annotations

import base64
import binascii
import math
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from .sacct import ACTIVE_STATES, SACCT_FIELDS
from .script import SCRIPT_NAME, STDERR, STDOUT
from .settings import SlurmSettings

MARK = "@@vhpc"
SCRIPT_WRITE_FAILED = 97
SALLOC_LOG = "salloc.log"
CANCEL_FILE = ".cancel"
JOB_ID_FILE = "job_id"
ACCOUNTING_TRIES = 40  # sacct attempts (0.25 s apart) before giving up on a final record
_ACTIVE = "|".join(sorted(ACTIVE_STATES - {"COMPLETING"}))


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else max(1, math.ceil(seconds * 1000))


def salloc_argv(options: Sequence[tuple[str, object]], extra: Sequence[str]) -> list[str]:
    """salloc's arguments from the job's ``(option, value)`` pairs and the settings' extra options."""
    return [f"{option}={value}" for option, value in options] + list(extra)


def session_program(settings: SlurmSettings, script: str, job_dir: str, *, salloc: Sequence[str] = (),
                    files: Sequence[str] = (), timeout_s: float | None = None, keep_job_dir: bool = False,
                    completion_only: bool = False) -> str:
    """The shell program running one job (see the module doc); ``salloc`` are salloc's options (allocation mode)."""
    delimiter = f"VHPC_SCRIPT_{uuid.uuid4().hex}"
    q = shlex.quote
    names = " ".join(q(f) for f in (STDOUT, STDERR, *files))
    submit = _SUBMIT_ALLOCATION if settings.submission == "allocation" else _SUBMIT_BATCH
    values = {
        "dir": q(job_dir), "script_name": SCRIPT_NAME, "limit_ms": _ms(settings.pending_limit_s),
        "timeout_ms": _ms(timeout_s), "poll_max_ms": _ms(settings.poll_interval_s), "mark": MARK,
        "salloc": " ".join(q(a) for a in salloc), "stdout": STDOUT, "stderr": STDERR, "salloc_log": SALLOC_LOG,
        "active": _ACTIVE, "fields": ",".join(SACCT_FIELDS), "completion": 1 if completion_only else 0,
        "tries": ACCOUNTING_TRIES, "files": names, "keep": 1 if keep_job_dir else 0,
        "write_failed": SCRIPT_WRITE_FAILED,
    }
    head = (f"d={values['dir']}\nmkdir -p \"$d\" && cat > \"$d/{SCRIPT_NAME}\" <<'{delimiter}' || "
            f"{{ echo 'vhpc: cannot write the job script' >&2; exit {SCRIPT_WRITE_FAILED}; }}\n"
            f"{script}{delimiter}\n")
    body = (_COMMON + submit + _COLLECT).replace("{", "{{").replace("}", "}}")
    for name in values:
        body = body.replace(f"<{name}>", f"{{{name}}}")
    return head + body.format(**values)


# The program, in pieces. <name> marks a value filled in by session_program (already quoted).
_COMMON = r"""
trap '' PIPE  # vhpc gone: keep going (cancel, clean up) instead of dying on the first write
limit_ms=<limit_ms>; timeout_ms=<timeout_ms>; poll_max_ms=<poll_max_ms>
say() { printf '<mark> %s\n' "$*"; }
ms() { date +%s%3N; }
# vhpc's executors give a command no stdin to read (its script arrives there): cancellation comes as the
# file .cancel, or as SIGTERM/SIGHUP (vhpc interrupted, or its SSH connection gone: see the trap below).
stdin_open=0
# Wait up to $1 seconds; true when vhpc asks for cancellation: the file .cancel in the job folder.
asked_to_cancel() {
  [ -e "$d/.cancel" ] && return 0
  if [ "$stdin_open" = 1 ]; then
    IFS= read -r -t "$1" -n 1 _c && return 0
    [ $? -gt 128 ] && return 1
    stdin_open=0; return 0
  fi
  sleep "$1"; return 1
}
# Sleep $1 ms in short steps, watching for a cancellation request.
nap() {
  local left=$1 step
  while [ "$left" -gt 0 ]; do
    step=$(( left < 200 ? left : 200 ))
    asked_to_cancel "0.$(printf '%03d' "$step")" && return 0
    left=$(( left - step ))
  done
  return 1
}
# Slurm's reason for a pending job (asked again shortly when the scheduler has not given one yet).
pending_reason() {
  local r
  for _ in 1 2 3; do
    r=$(squeue -h -j "$jid" -o %r 2>/dev/null)
    [ -n "$r" ] && [ "$r" != None ] && break
    sleep 0.5
  done
  printf '%s' "$r"
}
cancelled=""
cancel() {
  [ -n "$cancelled" ] && return
  cancelled=$1
  [ -z "$jid" ] && jid=$(cat "$d/job_id" 2>/dev/null)
  [ -n "$jid" ] && scancel "$jid" 2>&1
  say cancel "$1"
}
trap 'cancel interrupted' TERM HUP
jid=""; t0=$(ms); run_ms=""
"""

_SUBMIT_BATCH = r"""
out=$(sbatch --parsable "$d/<script_name>" 2>&1); rc=$?
if [ $rc -ne 0 ]; then say refused "$rc"; printf '%s\n' "$out"; say end-refused; rm -rf "$d"; exit 0; fi
jid=${out##*$'\n'}; jid=${jid%%;*}
echo "$jid" > "$d/job_id"; say job "$jid"
fails=0; state=""; squeue_failed=""
while :; do
  q=$(squeue -h -t all -j "$jid" -o '%T|%r' 2>&1); qrc=$?
  if [ $qrc -ne 0 ]; then
    case "$q" in *"Invalid job id"*) state=GONE; break;; esac
    fails=$((fails + 1))
    if [ $fails -ge 3 ]; then
      say squeue-failed; printf '%s\n' "$q"; say end-squeue-failed; squeue_failed=1; break
    fi
  else
    fails=0; q=${q%%$'\n'*}; state=${q%%|*}; reason=${q#*|}
    [ -z "$q" ] && state=GONE
    case "$state" in <active>) ;; *) break;; esac
    now=$(( $(ms) - t0 ))
    if [ "$state" != PENDING ] && [ -z "$run_ms" ]; then run_ms=$now; say running "$now"; fi
    if [ "$state" = PENDING ] && [ "$limit_ms" -gt 0 ] && [ "$now" -gt "$limit_ms" ] && [ -z "$cancelled" ]; then
      [ -z "$reason" ] || [ "$reason" = None ] && reason=$(pending_reason)
      say pending-reason "$reason"; cancel pending-limit
    fi
    if [ -n "$run_ms" ] && [ "$timeout_ms" -gt 0 ] && [ $(( now - run_ms )) -gt "$timeout_ms" ]; then cancel timeout; fi
  fi
  now=$(( $(ms) - t0 ))
  delay=$(( now / 10 )); [ $delay -lt 100 ] && delay=100; [ $delay -gt "$poll_max_ms" ] && delay=$poll_max_ms
  [ -n "$cancelled" ] && delay=250
  if nap "$delay"; then cancel interrupted; fi
done
say ended "$state" $(( $(ms) - t0 ))
"""

_SUBMIT_ALLOCATION = r"""
cd "$d" || exit <write_failed>
exec 3<&0  # vhpc's requests arrive on this program's stdin; the watcher below reads them
# salloc in a session of its own (its id in salloc.sid): a cancelled allocation whose command lingers
# is ended with its session. This shell only waits for it: no polling while the job runs.
setsid -w bash -c 'echo $$ > "$1"; shift; exec "$@"' vhpc-salloc "$d/salloc.sid" \
  salloc <salloc> bash -c 'exec bash "$0" > "$1" 2> "$2"' "$d/<script_name>" "$d/<stdout>" "$d/<stderr>" \
  < /dev/null 2> "$d/<salloc_log>" &
pid=$!
find_job() {
  sed -n 's/^salloc: \(Pending\|Granted\) job allocation \([0-9][0-9]*\).*/\2/p' "$d/<salloc_log>" | head -n 1
}
# Watches the allocation 5 times a second without forking once it runs: reports the job id and its start,
# and cancels it when vhpc asks, when it pends past the limit or runs past the timeout.
watch_allocation() {
  local sid="" granted="" killed_at="" started=$SECONDS last=-1
  while :; do
    [ -z "$sid" ] && sid=$(cat "$d/salloc.sid" 2>/dev/null)
    if [ -z "$jid" ]; then
      jid=$(find_job)
      [ -n "$jid" ] && { echo "$jid" > "$d/job_id"; say job "$jid"; }
    fi
    if [ -z "$granted" ] && grep -q '^salloc: Granted job allocation' "$d/<salloc_log>"; then
      granted=$SECONDS; say running $(( $(ms) - t0 ))
    fi
    if [ -z "$granted" ] && [ "$limit_ms" -gt 0 ] && [ $(( (SECONDS - started) * 1000 )) -gt "$limit_ms" ] \
        && [ -z "$cancelled" ]; then
      say pending-reason "$(pending_reason)"; cancel pending-limit
    fi
    if [ -n "$granted" ] && [ "$timeout_ms" -gt 0 ] && [ $(( (SECONDS - granted) * 1000 )) -gt "$timeout_ms" ]; then
      cancel timeout
    fi
    if asked_to_cancel 0.2; then cancel interrupted; fi
    if [ "$SECONDS" != "$last" ]; then  # once a second: was the allocation taken away (cancel, time limit)?
      last=$SECONDS
      if [ -z "$killed_at" ] && { [ -n "$cancelled" ] || grep -q 'has been revoked' "$d/<salloc_log>"; }; then
        killed_at=$SECONDS
      fi
    fi
    # No job yet, or salloc still waiting on its command 2 s after its allocation went: end its session.
    if [ -n "$sid" ] && { { [ -n "$cancelled" ] && [ -z "$jid" ]; } || \
        { [ -n "$killed_at" ] && [ $(( SECONDS - killed_at )) -ge 2 ]; }; }; then
      pkill -TERM -s "$sid" 2>/dev/null
    fi
  done
}
watch_allocation <&3 &
watcher=$!
wait "$pid"; rc=$?
kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null
jid=$(cat "$d/job_id" 2>/dev/null)
[ -z "$jid" ] && { jid=$(find_job); [ -n "$jid" ] && say job "$jid"; }
if [ -z "$jid" ]; then say refused "$rc"; cat "$d/<salloc_log>"; say end-refused; rm -rf "$d"; exit 0; fi
say ended salloc-exit-"$rc" $(( $(ms) - t0 ))
"""

_COLLECT = r"""
completion=<completion>; tries=0
while :; do
  if [ "$completion" = 1 ]; then a=$(sacct --completion -P -n -j "$jid" -o <fields> 2>&1); arc=$?
  else a=$(sacct -P -n -j "$jid" -o <fields> 2>&1); arc=$?; fi
  case "$a" in *"accounting storage is disabled"*) if [ "$completion" = 0 ]; then completion=1; continue; fi;; esac
  st=$(printf '%s\n' "$a" | awk -F'|' -v j="$jid" '$1 == j { print $6; exit }')
  st=${st%% *}
  if [ $arc -eq 0 ] && [ -n "$st" ]; then
    case "$st" in <active>|COMPLETING) ;; *) break;; esac
  fi
  # squeue gave up on slurmctld: the job's final record (slurmctld writes it) is not coming; vhpc reports the
  # squeue failure, so one look is enough before the job's files are sent back
  tries=$((tries + 1)); [ $tries -ge <tries> ] || [ -n "${squeue_failed:-}" ] && break
  sleep 0.25
done
say sacct "$completion" "$arc"; printf '%s\n' "$a"; say end-sacct
for f in <files> slurm_env.txt; do
  [ -f "$d/$f" ] && { say file "$f"; base64 -w 0 "$d/$f"; echo; }
done
[ -f "$d/<salloc_log>" ] && { say file <salloc_log>; base64 -w 0 "$d/<salloc_log>"; echo; }
[ <keep> = 1 ] || rm -rf "$d"
say done
"""


@dataclass
class SessionOutput:
    """What the submit-host program reported."""

    job_id: str | None = None
    refused: tuple[int, str] | None = None  # (exit code, Slurm's words) when sbatch/salloc refused the job
    running_ms: int | None = None  # since submission, when vhpc first saw the job running
    ended: str | None = None  # the last queue state seen, or salloc-exit-<rc>
    cancelled: str | None = None  # why the program cancelled the job (pending-limit, timeout, interrupted)
    pending_reason: str | None = None
    squeue_error: str | None = None
    sacct: tuple[bool, int, str] | None = None  # (completion file?, exit code, text)
    files: dict[str, bytes] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)  # files whose base64 did not decode
    done: bool = False


def _block(lines: list[str], start: int, end_mark: str) -> tuple[str, int]:
    """The lines from ``start`` up to the ``end_mark`` line, and the index after it."""
    out = []
    i = start
    while i < len(lines) and lines[i] != f"{MARK} {end_mark}":
        out.append(lines[i])
        i += 1
    return "\n".join(out), i + 1


def _int(text: str, default: int | None = None) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else default


def _simple_event(result: SessionOutput, event: str, rest: str) -> None:
    if event == "job":
        result.job_id = rest.strip() or None
    elif event == "running":
        result.running_ms = _int(rest)
    elif event == "ended":
        result.ended = rest.split()[0] if rest.split() else None
    elif event == "cancel":
        result.cancelled = result.cancelled or rest.strip()
    elif event == "pending-reason":
        result.pending_reason = rest.strip() or None
    elif event == "done":
        result.done = True


def parse_session(text: str) -> SessionOutput:
    """The events of a session program's output (tolerates a truncated output: ``done`` stays False)."""
    result = SessionOutput()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith(f"{MARK} "):
            continue
        event, _, rest = line[len(MARK) + 1:].partition(" ")
        if event == "refused":
            body, i = _block(lines, i, "end-refused")
            result.refused = (_int(rest, 1) or 1, body)
        elif event == "squeue-failed":
            result.squeue_error, i = _block(lines, i, "end-squeue-failed")
        elif event == "sacct":
            mode, _, code = rest.partition(" ")
            body, i = _block(lines, i, "end-sacct")
            result.sacct = (mode == "1", _int(code, 1) or 0, body)
        elif event == "file" and i < len(lines):
            name, payload = rest.strip(), lines[i]
            i += 1
            try:
                result.files[name] = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                result.damaged.append(name)
        else:
            _simple_event(result, event, rest)
    return result
