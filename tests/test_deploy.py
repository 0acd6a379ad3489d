"""deploy/ checked without Docker (there is no Docker daemon on the build machine; see
docs/operations.md): the files parse; compose services reference files, services, volumes and
secrets that exist and give the settings every variable they require (proved by loading the
settings with exactly a service's environment); the Dockerfile copies what exists, every app,
runs as a non-root user and checks health; Prometheus' rules are valid rule groups whose PromQL
names only metrics core/metrics.py defines, and each alert has its runbook section; the Grafana
dashboard's queries likewise; the container's health check and the worker's /metrics server run."""

import ast
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.conftest import ROOT, free_port, wait_for_port, wait_until

DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
SETTINGS = (ROOT / "config" / "settings.py").read_text()
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
PARLEY_IMAGE = "parley:latest"


# -- metric names and a PromQL-ish checker --------------------------------------------------------


def defined_metrics() -> set[str]:
    """The series names core/metrics.py exposes (counters _total, histograms _bucket/_sum/_count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / "core" / "metrics.py").read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        name = first.value
        if node.func.id == "Counter":
            names.add(name.removesuffix("_total") + "_total")
        elif node.func.id == "Gauge":
            names.add(name)
        elif node.func.id in ("Histogram", "Summary"):
            names.update(
                {f"{name}_sum", f"{name}_count"} | ({f"{name}_bucket"} if node.func.id == "Histogram" else set())
            )
    return names


METRICS = defined_metrics() | {"up"}  # `up`: Prometheus' own, per scrape target
FUNCTIONS = {"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min"}
FUNCTIONS |= {"clamp_max", "time", "abs", "absent", "delta", "topk", "max_over_time", "min_over_time", "vector"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = rf"\s*[a-zA-Z_]\w*\s*(=~|!~|!=|=)\s*{_STRING}\s*"
_MATCHERS = re.compile(rf"^({_MATCHER}(,{_MATCHER})*,?)?\s*$")


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads; AssertionError when it is not well formed."""
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(_STRING, '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, f"unbalanced {char!r} in {expr!r}"
    assert all(v == 0 for v in depth.values()), f"unbalanced brackets in {expr!r}"
    for matchers in re.findall(r"\{([^{}]*)\}", expr):
        assert _MATCHERS.match(matchers), f"bad label matchers {{{matchers}}} in {expr!r}"
    text = re.sub(r"\{[^{}]*\}", "", re.sub(_STRING, '""', expr))
    for window in re.findall(r"\[([^\]]*)\]", text):
        assert re.fullmatch(r"\d+[smhdwy](:\d+[smhdwy])?", window), f"bad range [{window}] in {expr!r}"
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\boffset\s+\d+[smhdwy]", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if match.start() and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent of a number (1e-9)
        word, rest = match.group(), text[match.end() :].lstrip()
        if word in KEYWORDS:
            continue
        if rest.startswith("(") or re.match(r"(by|without)\b", rest):  # a call; `sum by (le) (...)`
            assert word in FUNCTIONS, f"unknown function {word}() in {expr!r}"
        else:
            names.add(word)
    assert names, f"{expr!r} reads no metric"
    return names


def test_the_promql_checker_itself_catches_mistakes():
    good = 'histogram_quantile(0.99, sum by (le) (rate(parley_delivery_latency_seconds_bucket{a=~"x|y"}[5m]))) > 1e-3'
    assert promql_metrics(good) == {"parley_delivery_latency_seconds_bucket"}
    for bad in ("sum(rate(x[5m])", "rate(x[5 m])", 'x{a="b}', "frobnicate(x)", "x{a=b}"):
        with pytest.raises(AssertionError):
            promql_metrics(bad)


# -- Prometheus ----------------------------------------------------------------------------------


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    found = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        found.add(re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", heading.lower())))
    return found


def test_alert_rules_are_valid_groups_on_existing_metrics_with_runbooks():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    wanted = {"ParleyConnectionsHigh", "ParleyDeliveryLatencyP99High", "ParleyHttpErrorRateHigh"}
    wanted |= {"ParleyArchiveFailed", "ParleyPartitionsMissingAhead"}
    seen: set[str] = set()
    groups = [group["name"] for group in rules["groups"]]
    assert len(groups) == len(set(groups))
    for group in rules["groups"]:
        assert set(group) <= {"name", "rules", "interval", "limit"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            name = rule["alert"]
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in seen
            seen.add(name)
            unknown = promql_metrics(rule["expr"]) - METRICS
            assert not unknown, f"{name} reads metrics core/metrics.py does not define: {unknown}"
            assert DURATION.match(rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            document, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert document == "docs/operations.md" and anchor in anchors(OPERATIONS), f"{name}: no runbook section"
    assert wanted <= seen


def test_prometheus_scrapes_the_compose_services_with_the_token():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    prometheus = SERVICES["prometheus"]
    mounted = {volume.split(":")[1] for volume in prometheus["volumes"] if volume.startswith("./")}
    assert set(config["rule_files"]) <= mounted
    hosts = set(SERVICES) | {"localhost"}
    for job in config["scrape_configs"]:
        assert DURATION.match(config["global"]["scrape_interval"])
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in hosts and port.isdigit(), target
        if job["job_name"].startswith("parley"):
            secret = job["authorization"]["credentials_file"].removeprefix("/run/secrets/")
            assert secret in prometheus["secrets"] and secret in COMPOSE["secrets"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web_targets = {t for s in jobs["parley-web"]["static_configs"] for t in s["targets"]}
    assert web_targets == {f"{name}:8000" for name in SERVICES if name.startswith("web-")}


# -- Grafana -------------------------------------------------------------------------------------


def test_the_dashboard_queries_existing_metrics_from_the_provisioned_datasource():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "parley.json").read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "parley.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    mounts = dict(volume.split(":")[:2] for volume in SERVICES["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    used: set[str] = set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = promql_metrics(target["expr"])
            assert not names - METRICS, f"{panel['title']}: {names - METRICS}"
            used |= names
    for needed in ("parley_connections_open", "parley_delivery_latency_seconds_bucket", "parley_errors_total"):
        assert needed in used


# -- compose -------------------------------------------------------------------------------------


def substitute(value: str, given: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""

    def one(match: re.Match) -> str:
        name, operator, word = match.group(1), match.group(2) or "", match.group(3) or ""
        if operator == ":-":
            return given.get(name) or word
        assert name in given, f"${{{name}}} is not set ({word})"
        return given[name]

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value).replace("$$", "$")


def required_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "docker-compose.yml").read_text()))


def test_compose_services_reference_what_exists():
    volumes, secrets = set(COMPOSE["volumes"]), set(COMPOSE["secrets"])
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in volumes, f"{name}: volume {source} is not declared"
        depends = service.get("depends_on", {})
        assert set(depends) <= set(SERVICES), name
        assert set(service.get("secrets", [])) <= secrets, name
    # nginx: deploy/nginx.conf as it is; its upstream hosts are the web services' aliases.
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+):(\d+)", nginx, flags=re.MULTILINE))
    aliases = {
        alias: name
        for name, service in SERVICES.items()
        for alias in service.get("networks", {}).get("default", {}).get("aliases", [])
    }
    assert upstreams and all(host in aliases and port == "8000" for host, port in upstreams), upstreams
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in SERVICES["nginx"]["volumes"]
    # The bucket the app archives to is the one minio-init creates.
    buckets = {
        service["environment"].get("S3_BUCKET") for service in SERVICES.values() if service.get("image") == PARLEY_IMAGE
    }
    (bucket,) = buckets
    assert f"local/{bucket}" in (DEPLOY / "minio-init.sh").read_text()
    # Every variable an operator must set is explained in the runbook.
    for variable in required_variables():
        assert f"`{variable}`" in OPERATIONS, f"{variable} is not documented in docs/operations.md"


def test_every_parley_service_gets_what_the_settings_require_and_they_load_with_it():
    required = set(re.findall(r'env_required\("(\w+)"\)', SETTINGS))
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= required
    given = {name: f"test-{name.lower()}-" + "x" * 50 for name in required_variables()}
    parley = {name: s for name, s in SERVICES.items() if s.get("image") == PARLEY_IMAGE}
    assert {"migrate", "web-1", "web-2", "worker", "beat"} <= set(parley)
    for name, service in parley.items():
        environment = {key: substitute(str(value), given) for key, value in service["environment"].items()}
        assert required <= set(environment), f"{name} lacks {required - set(environment)}"
    # The settings load (production: no DEBUG, not testing) with exactly the web service's variables.
    environment = {key: substitute(str(value), given) for key, value in SERVICES["web-1"]["environment"].items()}
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
        "from django.conf import settings; print(settings.DEBUG, settings.S3_BUCKET, settings.ALLOWED_HOSTS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"} | environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[:2] == ["False", "parley-archive"]


# -- Dockerfile ----------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_is_slim_copies_what_exists_and_runs_unprivileged():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    copied = set()
    for kind, argument in steps:
        if kind == "COPY":
            *sources, _target = argument.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied.add(source)
    local_apps = [app for app in re.findall(r'^\s+"(\w+)",$', SETTINGS, flags=re.MULTILINE) if (ROOT / app).is_dir()]
    assert local_apps and set(local_apps) | {"config", "core", "templates", "static", "manage.py"} <= copied
    assert any(kind == "RUN" and "-r requirements.lock" in argument for kind, argument in steps)
    assert any(kind == "RUN" and "collectstatic" in argument for kind, argument in steps)
    users = [argument for kind, argument in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_run = max(i for i, (kind, _) in enumerate(steps) if kind == "RUN")
    assert max(i for i, (kind, _) in enumerate(steps) if kind == "USER") > last_run
    (healthcheck,) = [argument for kind, argument in steps if kind == "HEALTHCHECK"]
    assert "deploy/healthcheck.py" in healthcheck and ("/healthz" in healthcheck or "/readyz" in healthcheck)
    assert steps[-1] == ("CMD", '["python", "scripts/serve.py"]')


def test_the_container_health_check_passes_only_on_200():
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = str(server.server_address[1])

    def check() -> int:
        command = [sys.executable, str(DEPLOY / "healthcheck.py"), "/healthz"]
        return subprocess.run(command, env={"PORT": port}, capture_output=True).returncode

    try:
        assert check() == 0
        status["code"] = 503
        assert check() == 1
    finally:
        server.shutdown()
        server.server_close()
    assert check() == 1  # nothing listening


def test_the_worker_metrics_server_serves_the_shared_directory_to_the_token_only(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "METRICS_TOKEN": "s3cret"}
    # A Celery process's counter, written to the shared directory before the server starts.
    writer = "from core import metrics; metrics.TASK_RUNS.labels('messaging.tasks.archive_partitions', 'success').inc()"
    subprocess.run([sys.executable, "-c", writer], cwd=ROOT, env=env, check=True)
    process = subprocess.Popen(
        [sys.executable, str(DEPLOY / "worker_metrics.py")], cwd=ROOT, env=env | {"WORKER_METRICS_PORT": str(port)}
    )
    try:
        wait_for_port(port, process)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer s3cret"})
        body = urllib.request.urlopen(request, timeout=10).read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=10)
    (line,) = [line for line in body.splitlines() if line.startswith("parley_celery_task_runs_total{")]
    assert 'task="messaging.tasks.archive_partitions"' in line and 'outcome="success"' in line and line.endswith(" 1.0")
    assert refused.value.code == 404


# -- with Docker (not on the build machine: skipped there) --------------------------------------


@pytest.mark.skipif(
    not (os.environ.get("PARLEY_DOCKER_TESTS") == "1" and shutil.which("docker")),
    reason="needs a Docker daemon and PARLEY_DOCKER_TESTS=1 (minutes: builds the image, starts compose)",
)
def test_compose_up_serves_readyz_through_nginx(tmp_path):
    """Never run where this was written (no Docker daemon there): builds the image, starts the
    whole compose project and asks nginx for /readyz, then removes everything."""
    secrets = {"SECRET_KEY": "k" * 64, "POSTGRES_PASSWORD": "p" * 16, "MINIO_ROOT_PASSWORD": "m" * 16}
    env = os.environ | secrets | {"METRICS_TOKEN": "t" * 32, "COMPOSE_PROJECT_NAME": "parley-test"}
    compose = ["docker", "compose", "-f", str(DEPLOY / "docker-compose.yml")]
    try:
        subprocess.run([*compose, "up", "-d", "--build"], env=env, check=True, timeout=1800)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the self-signed certificate

        def ready() -> bool:
            try:
                with urllib.request.urlopen("https://localhost/readyz", context=context, timeout=5) as answer:
                    return json.loads(answer.read())["status"] == "ok"
            except OSError:
                return False

        wait_until(ready, timeout=300, what="nginx -> web /readyz answering ok")
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, timeout=600)
