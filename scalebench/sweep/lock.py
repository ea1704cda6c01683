"""One writer per run directory: an exclusive `flock` on `<run>/.lock` while a sweep writes.

Why `flock`: taking it is atomic, so two `scalebench run` started at the same moment cannot
both get it, and the kernel releases it when its holder dies (kill -9 included), so a lock
left by a killed process is stale by construction and the next writer simply takes it over.
The file also carries the holder's pid, host, start time and command, only for the message a
second writer prints. The holder deletes the file when it is done (after checking, on taking
it, that the path still names the file it locked — the usual guard against a delete racing
an open). Readers (`load_results`, `table`, `report`, `compare`) never look at it.

Caveat: a child forked (not exec'd) by the holder inherits the lock; scalebench forks none.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalebench.errors import ScalebenchError
from scalebench.provenance import now

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run directory's lock, as written in the lock file."""

    pid: int | None = None
    host: str | None = None
    started_at: str | None = None
    command: str | None = None

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), now(), " ".join(sys.argv)[:300])

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(d, dict):
            return None
        pid = d.get("pid")
        return cls(pid if isinstance(pid, int) else None, *(str(d[k]) if d.get(k) is not None else None
                                                             for k in ("host", "started_at", "command")))

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its pid yet)"
        return f"pid {self.pid} on host {self.host or '?'} since {self.started_at or '?'}"


class RunLocked(ScalebenchError):
    """Another live process is writing this run directory."""

    def __init__(self, run_dir: Path, holder: Holder | None) -> None:
        self.run_dir, self.holder = run_dir, holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"{run_dir} is being written by {who}; wait for it to finish (or pass --wait), "
                         "or write elsewhere with --out")


class RunLock:
    """Exclusive writer lock of a run directory (context manager).

    `wait=False` raises `RunLocked` at once when a live process holds the lock; `wait=True`
    polls every `poll_s` seconds until it is free (`on_wait(holder)` is called once first).
    After `acquire`, `took_over` is the holder recorded by a writer that died holding it.
    """

    def __init__(self, run_dir: str | Path, wait: bool = False, poll_s: float = 0.2,
                 on_wait: Callable[[Holder | None], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.wait, self.poll_s, self.on_wait = wait, poll_s, on_wait
        self.took_over: Holder | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _try_once(self) -> bool | Holder | None:
        """True when acquired, False to retry at once, else the holder (None if unreadable)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(os.pread(fd, 4096, 0))
            for _ in range(10):  # the holder writes its pid just after locking: give it a moment
                if holder is not None:
                    break
                time.sleep(0.02)
                holder = Holder.parse(os.pread(fd, 4096, 0))
            os.close(fd)
            return holder
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have deleted the file we opened: then retry on the new one
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        try:
            previous = Holder.parse(os.pread(fd, 4096, 0))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(Holder.me())).encode("utf-8") + b"\n", 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.took_over = previous
        if previous is not None:
            log.warning("%s: took over the lock left by %s (that process is gone)", self.run_dir, previous.describe())
        return True

    def acquire(self) -> RunLock:
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        announced = False
        while True:
            got = self._try_once()
            if got is True:
                return self
            if got is False:
                continue  # lost a race with the holder's release: try again at once
            holder = got
            if not self.wait:
                raise RunLocked(self.run_dir, holder)
            if not announced and self.on_wait:
                self.on_wait(holder)
            announced = True
            time.sleep(self.poll_s)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)  # while still holding it, so nobody locks a file about to vanish unnoticed
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
