"""Expected failures, kept apart from bugs: what the CLI prints as one line and exit code 2.

An *expected* failure is bad input or a fault of the environment that the user can fix
(a malformed spec, a locked run directory, a full disk, a broken plugin). Those are either
a `ScalebenchError` (raised by our own checks, with a message that names the problem and the
fix) or an `OSError` whose errno is in `EXPECTED_ERRNOS`. Everything else is a bug and keeps
its traceback. The list is explicit so that a new exception type is a traceback until someone
decides it is the user's to fix.
"""

from __future__ import annotations

import errno
import os

# errno → what to tell the user after "<path>: <strerror>".
EXPECTED_ERRNOS: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file; check the path",
    errno.EISDIR: "it is a directory; pass a file",
    errno.EEXIST: "it is not a directory; pass another path",
    errno.EACCES: "pass a location you may write to (e.g. --out DIR)",
    errno.EPERM: "pass a location you may write to (e.g. --out DIR)",
    errno.EROFS: "pass --out DIR on a writable file system",
    errno.ENOSPC: "free some space and run the same command again (a sweep resumes, finished points are kept)",
    errno.EDQUOT: "free some space (disk quota) and run the same command again (a sweep resumes)",
    errno.ENAMETOOLONG: "use a shorter name or path",
    errno.ELOOP: "the path has a symbolic link loop; check the path",
    errno.ENOLCK: "this file system cannot lock the run directory; pass --out DIR on a local disk",
}
# `FileNotFoundError("message")` has errno None; its type still says which errno it stands for.
_ERRNO_OF_TYPE: dict[type[OSError], int] = {
    FileNotFoundError: errno.ENOENT, NotADirectoryError: errno.ENOTDIR, IsADirectoryError: errno.EISDIR,
    FileExistsError: errno.EEXIST, PermissionError: errno.EACCES,
}


class ScalebenchError(Exception):
    """Base of the failures the user can fix; the message is one line naming problem and fix."""


class UsageError(ScalebenchError, ValueError):
    """A command-line argument or option that cannot work (device, format, --out, …)."""


class ResultsError(ScalebenchError, ValueError):
    """A results path that holds no run or no usable values, or records this scalebench cannot read."""


class RegistryError(ScalebenchError, KeyError):
    """An unknown registered name; the message names it and suggests the closest known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line
        return str(self.args[0])


class PluginError(ScalebenchError, ImportError):
    """A third-party generator (entry point) that cannot be imported when it is needed."""


def _errno(e: OSError) -> int | None:
    if e.errno is not None:
        return e.errno
    return next((n for t, n in _ERRNO_OF_TYPE.items() if isinstance(e, t)), None)


def is_expected(e: BaseException) -> bool:
    """True for failures the user can fix (one line, exit 2); False for bugs (traceback)."""
    if isinstance(e, ScalebenchError):
        return True
    if isinstance(e, OSError):
        return _errno(e) in EXPECTED_ERRNOS
    return False


def _short(path: object, limit: int = 160) -> str:
    s = os.fsdecode(path) if isinstance(path, bytes | str | os.PathLike) else str(path)
    return s if len(s) <= limit else f"{s[:limit // 2]}…{s[-limit // 2:]}"


def one_line(e: BaseException) -> str:
    """The message of an expected failure as a single line (no trailing newline)."""
    if isinstance(e, OSError) and not isinstance(e, ScalebenchError) and e.strerror:
        code = _errno(e)
        where = _short(e.filename) + ": " if e.filename is not None else ""
        name = errno.errorcode.get(code, "") if code is not None else ""
        hint = EXPECTED_ERRNOS.get(code, "") if code is not None else ""
        msg = f"{where}{e.strerror.lower()}" + (f" ({name})" if name else "") + (f"; {hint}" if hint else "")
    else:
        msg = str(e).strip() or type(e).__name__
    return " ".join(part.strip() for part in msg.splitlines() if part.strip())
