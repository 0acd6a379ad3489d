"""Stopping and starting again the PostgreSQL server this test run uses: a real restart.

Only the embedded, throwaway server that `scripts/stack.py test` started (from the pgserver wheel,
data under a parley-test-* temporary directory) is ever restarted; with a DATABASE_URL of your own
`Postmaster.find()` returns None and the scenario says so. The server is stopped the way
scripts/stack.py stops it (SIGINT: PostgreSQL's fast shutdown) and started again with the same
command line, as the same user. The new one is this process's child: the kernel stops it if we
die (PR_SET_PDEATHSIG), and it is stopped at exit otherwise; scripts/stack.py, which no longer
has it, then only removes its data directory.
"""

import asyncio
import atexit
import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.db import connection


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG, after the user switch


@dataclass
class Postmaster:
    pid: int
    argv: list[str]
    data: Path
    uid: int
    gid: int

    @classmethod
    def find(cls) -> "Postmaster | None":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW data_directory")
                data = Path(cursor.fetchone()[0])
            pid = int((data / "postmaster.pid").read_text().split()[0])
            argv = [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        except (OSError, ValueError, psycopg.Error):
            return None
        if "pgserver" not in argv[0] or not data.parent.name.startswith("parley-test-"):
            return None  # not ours to restart
        return cls(pid, argv, data, int(status["Uid"].split()[0]), int(status["Gid"].split()[0]))

    async def stop(self, timeout: float = 30) -> None:
        os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while (self.data / "postmaster.pid").exists():  # removed at the end of a clean shutdown
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL did not stop within {timeout}s")
            await asyncio.sleep(0.02)

    async def start(self, dsn: str, timeout: float = 30) -> None:
        """Start it again (from the event loop's thread: the kernel ties the child to the thread
        that forks it) and wait until it accepts connections."""
        as_user: dict = {}
        if os.geteuid() == 0 and self.uid != 0:
            as_user = {"user": self.uid, "group": self.gid, "extra_groups": []}
        log = open(self.data.parent / "postgres-restarted.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **as_user,
        )
        log.close()
        self.pid = process.pid
        atexit.register(_stop_at_exit, process)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await (await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)).close()
                return
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("PostgreSQL did not come back") from None
                await asyncio.sleep(0.05)


def _stop_at_exit(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
