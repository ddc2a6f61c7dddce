"""Secrets never reach a run record: values are redacted by the variable's name and by their own shape.

A variable is secret when its name holds a word of ``SECRET_NAME_WORDS``
(``DB_PASSWD``, ``API_CREDENTIALS``, ``SESSION_COOKIE`` ...) or when its value
looks like a credential whatever its name (a URL with ``user:password@``, a
bearer or basic authorization, a private key block, a token of a well-known
shape). Command lines and free text go through ``redact_text``, which replaces
only the secret part. An inventory may keep named variables in clear with
``redaction_allow`` when a name merely looks secret (``KEY_SIZE``); a value that
looks like a credential is redacted even then.

Records are redacted; processes never see a secret on their command line
either (``remote`` sends variables on stdin or in the process environment).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

REDACTED = "***redacted***"

#: Words that make a variable name secret (matched between separators or at the ends, any case).
SECRET_NAME_WORDS = ("PASS", "PASSWD", "PASSWORD", "PASSPHRASE", "PWD", "SECRET", "TOKEN", "KEY", "KEYS",
                     "APIKEY", "CREDENTIAL", "CREDENTIALS", "CRED", "CREDS", "AUTH", "AUTHORIZATION", "COOKIE",
                     "SESSION", "PRIVATE", "SIGNATURE", "CERT", "DSN", "SALT", "BEARER", "OTP")
#: Fragments that make a name secret wherever they appear (``MYPASSWORD``, ``GITHUBTOKEN``).
SECRET_NAME_FRAGMENTS = ("PASSW", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "APIKEY", "ACCESSKEY",
                         "PRIVATEKEY", "AUTHORIZATION", "COOKIE")
#: Names that hold the words above but are never secrets.
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD", "XAUTHORITY", "KEYTIMEOUT", "PINENTRY_USER_DATA"})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@]*):(?P<password>[^\s@/]+)@")
_VALUE_PATTERNS = [
    re.compile(r"(?i)\b(?:bearer|basic|token|digest)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"),  # JWT
    # --password=x, --token x, password=x inside a command line or a free-text value
    re.compile(r"(?i)(?<![A-Za-z0-9])-{0,2}(?:[A-Za-z0-9]+[_-])*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|"
               r"access[_-]?key|private[_-]?key|credentials?|auth|cookie)[=:]\s*[^\s&;]+"),
]


def secret_name(name: str) -> bool:
    """Whether a variable name says its value is secret (``DB_PASSWD``, ``apiKey``, ``SESSION_COOKIE``)."""
    if name.upper() in NOT_SECRET_NAMES:
        return False
    upper = name.upper()
    if any(fragment in upper.replace("_", "").replace("-", "") for fragment in SECRET_NAME_FRAGMENTS):
        return True
    words = {w.upper() for w in _WORD_SPLIT.split(name) if w}
    return bool(words & set(SECRET_NAME_WORDS))


def secret_value(value: str) -> bool:
    """Whether a value looks like a credential on its own (URL with a password, bearer token, key block...)."""
    return redact_text(value) != value


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped part replaced (the rest of a command line stays readable)."""
    out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    for pattern in _VALUE_PATTERNS[:-1]:
        out = pattern.sub(REDACTED, out)
    return _VALUE_PATTERNS[-1].sub(_keep_key, out)


def _keep_key(match: re.Match) -> str:
    text = match.group(0)
    for sep in ("=", ":"):
        if sep in text:
            key = text.split(sep, 1)[0]
            return f"{key}{sep}{REDACTED}"
    return REDACTED


def redact_env(env: Mapping[str, str], allow: Collection[str] = ()) -> dict[str, str]:
    """Values of secret-looking variables hidden; ``allow`` keeps named ones (not credential-shaped values)."""
    out = {}
    for name, value in env.items():
        text = str(value)
        if name not in allow and secret_name(name):
            out[name] = REDACTED
        else:
            out[name] = redact_text(text)
    return out


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command's arguments with credential-shaped parts hidden (``--password=x``, ``https://u:p@h``)."""
    out = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag = arg.lstrip("-")
        if arg.startswith("-") and "=" not in arg and secret_name(flag.replace("-", "_")):
            hide_next = True  # "--password x": the value is the next argument
            out.append(arg)
            continue
        out.append(redact_text(arg))
    return out


#: Values shorter than this are never searched for in stored files (``1`` or ``on`` would hit every log).
MIN_SECRET_LEN = 4


def secret_parts(env: Mapping[str, str], allow: Collection[str] = ()) -> set[str]:
    """The literal secrets a set of variables holds: whole values of secret names, credential parts of others.

    These are what ``redact_file`` hides in a run's stored files (a benchmark may print what it was given).
    """
    out: set[str] = set()
    for name, value in env.items():
        text = str(value)
        if name not in allow and secret_name(name):
            out.add(text)
            out.update(line for line in text.splitlines() if len(line.strip()) >= MIN_SECRET_LEN)
            continue
        out.update(m["password"] for m in _URL_USERINFO.finditer(text))
        for pattern in _VALUE_PATTERNS[:-1]:
            out.update(m.group(0) for m in pattern.finditer(text))
        for m in _VALUE_PATTERNS[-1].finditer(text):
            key, sep, rest = m.group(0).partition("=") if "=" in m.group(0) else m.group(0).partition(":")
            out.add(rest.strip() if sep else m.group(0))
    return {s for s in out if len(s) >= MIN_SECRET_LEN}


def redact_bytes(data: bytes, secrets: Collection[str]) -> tuple[bytes, int]:
    """``data`` with every occurrence of each secret replaced by ``REDACTED``; and how many were replaced.

    Longer secrets first, so a secret containing another is hidden whole.
    """
    count = 0
    for secret in sorted(secrets, key=len, reverse=True):
        needle = secret.encode()
        n = data.count(needle)
        if n:
            data = data.replace(needle, REDACTED.encode())
            count += n
    return data, count
