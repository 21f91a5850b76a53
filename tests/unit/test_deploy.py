"""Static checks of the production-shaped stack: docker-compose.yml and deploy/.

No Docker is needed: these parse the files and check them against the code
(settings fields, service packages) and against each other (databases, ports,
metric names).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when the project is not installed into the venv
    sys.path.insert(0, str(ROOT))

from shared.settings import ServiceSettings  # noqa: E402
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"

APP_SERVICES = {"intake": 8001, "eligibility": 8002, "payments": 8003, "monitoring": 8004}
ALL_SERVICES = {"kafka", "postgres", *APP_SERVICES, "prometheus", "grafana"}
REQUIRED_ENV = [
    "SERVICE_NAME",
    "ENVIRONMENT",
    "DATABASE_URL",
    "EVENT_BUS",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_IDEMPOTENCE",
    "AUTH_JWT_SECRET",
    "DATA_ENCRYPTION_KEY",
]
# The metric names the services export (shared/ metrics); the dashboard may use no other.
METRIC_NAMES = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "outbox_backlog",
    "consumer_lag",
    "dead_letters_total",
    "deadline_breaches_total",
    "calendar_provisional_deadlines_total",
}


# --------------------------------------------------------------------------- helpers


def _load_compose() -> dict:
    with COMPOSE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load_compose()


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


_INTERP = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _interpolate(value: str, supplied: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error} with the given variables."""

    def repl(m: re.Match) -> str:
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        if supplied.get(name):
            return supplied[name]
        if op and op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg or ""

    return _INTERP.sub(repl, value)


def _settings_class(name: str) -> type[ServiceSettings]:
    """The service's own Settings class if services/<name>/settings.py exists, else the base."""
    module_name = f"services.{name}.settings"
    if importlib.util.find_spec(module_name) is None:
        return ServiceSettings
    module = importlib.import_module(module_name)
    cls = getattr(module, "Settings", None)
    if cls is None:
        candidates = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, ServiceSettings) and obj.__module__ == module_name
        ]
        assert len(candidates) == 1, f"{module_name} has no Settings class"
        cls = candidates[0]
    assert issubclass(cls, ServiceSettings), f"{module_name}.Settings must extend ServiceSettings"
    return cls


def _command_argv(service: dict) -> list[str]:
    cmd = service.get("command")
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _created_databases() -> set[str]:
    sql = (DEPLOY / "postgres" / "init-databases.sql").read_text(encoding="utf-8")
    sql = re.sub(r"--[^\n]*", "", sql)
    return {m.lower() for m in re.findall(r'CREATE\s+DATABASE\s+"?(\w+)"?', sql, flags=re.I)}


# --------------------------------------------------------------------------- compose


def test_compose_parses_and_names_all_services(compose):
    assert isinstance(compose, dict)
    services = compose.get("services")
    assert isinstance(services, dict)
    missing = ALL_SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_sets_required_env(compose, name):
    env = _env(compose["services"][name])
    missing = [k for k in REQUIRED_ENV if k not in env or env[k] == ""]
    assert not missing, f"{name}: missing env {missing}"
    assert env["SERVICE_NAME"] == name
    assert env["ENVIRONMENT"] == "production"
    assert env["EVENT_BUS"] == "kafka"
    # Secrets come from the caller's environment and are mandatory, never baked in.
    for secret in ("AUTH_JWT_SECRET", "DATA_ENCRYPTION_KEY"):
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), (
            f"{name}: {secret} must be ${{{secret}:?...}} (required from the environment), got {env[secret]!r}"
        )


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_env_is_read_by_the_code(compose, name):
    cls = _settings_class(name)
    fields = set(cls.model_fields)
    env = _env(compose["services"][name])
    unread = sorted(k for k in env if k.lower() not in fields)
    assert not unread, f"{name}: compose sets env vars no settings field reads: {unread} ({cls.__module__}.{cls.__name__})"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_env_builds_valid_settings(compose, name, monkeypatch):
    """The compose values (with secrets supplied) are accepted by the settings class."""
    cls = _settings_class(name)
    supplied = {"AUTH_JWT_SECRET": "j" * 48, "DATA_ENCRYPTION_KEY": "k" * 48}
    for field in cls.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    env = {k: _interpolate(v, supplied) for k, v in _env(compose["services"][name]).items()}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = cls()
    assert settings.service_name == name
    assert settings.environment == "production"
    assert settings.event_bus == "kafka"
    assert settings.kafka_idempotence is True
    assert settings.database_url == env["DATABASE_URL"]
    assert not settings.is_sqlite


def test_secrets_are_required_by_compose(compose):
    env = _env(compose["services"]["payments"])
    with pytest.raises(AssertionError, match="AUTH_JWT_SECRET"):
        _interpolate(env["AUTH_JWT_SECRET"], {})


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_database_url_points_at_created_database(compose, name):
    url = urlsplit(_env(compose["services"][name])["DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "postgres" and "postgres" in compose["services"]
    database = url.path.lstrip("/")
    assert database == name, f"{name} must own its own database, not {database!r}"
    assert database in _created_databases(), f"init-databases.sql does not create {database!r}"


def test_init_sql_creates_one_database_per_service():
    assert _created_databases() == set(APP_SERVICES)


def test_postgres_runs_init_script_and_has_healthcheck(compose):
    pg = compose["services"]["postgres"]
    assert str(pg["image"]).startswith("postgres:15")
    mounts = [str(v) for v in pg.get("volumes", [])]
    assert any(
        "deploy/postgres/init-databases.sql" in m and "/docker-entrypoint-initdb.d/" in m for m in mounts
    ), mounts
    assert any(m.split(":")[0] in compose.get("volumes", {}) for m in mounts), "postgres needs a named volume"
    assert "pg_isready" in json.dumps(pg["healthcheck"]["test"])


def test_kafka_is_kraft_without_zookeeper(compose):
    services = compose["services"]
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = _env(kafka)
    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert {"broker", "controller"} <= roles
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert "CONTROLLER" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "true"
    assert not any(k.startswith("KAFKA_ZOOKEEPER") for k in env)
    for name, svc in services.items():
        assert "zookeeper" not in name.lower()
        assert "zookeeper" not in str(svc.get("image", "")).lower()
    assert "healthcheck" in kafka


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_wiring(compose, name):
    svc = compose["services"][name]
    port = APP_SERVICES[name]
    build = svc["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert _env(svc)["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    deps = svc["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["postgres"]["condition"] == "service_healthy"
    assert any(str(p).split(":")[-1] == str(port) for p in svc["ports"]), svc["ports"]
    health = json.dumps(svc["healthcheck"]["test"])
    assert "urllib" in health and f":{port}/readyz" in health
    assert "replicas" in svc.get("deploy", {})


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_command_module_is_the_service_package(compose, name):
    argv = _command_argv(compose["services"][name])
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert module == f"services.{name}"
    package = ROOT.joinpath(*module.split("."))
    assert package.is_dir() and (package / "__init__.py").is_file(), f"{module} is not a package"
    if not (package / "__main__.py").is_file():
        pytest.skip(f"{module}/__main__.py (migrations + uvicorn entrypoint) is not written yet")
    assert importlib.util.find_spec(f"{module}.__main__") is not None


def test_bind_mount_sources_exist(compose):
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = vol["source"] if isinstance(vol, dict) else str(vol).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: mount source {source} does not exist"


# --------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_all_services(compose):
    prom = compose["services"]["prometheus"]
    assert any("deploy/prometheus/prometheus.yml" in str(v) for v in prom.get("volumes", []))
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sc in job.get("static_configs", []):
            targets.update(sc.get("targets", []))
        for sd in job.get("dns_sd_configs", []):
            targets.update(f"{n}:{sd['port']}" for n in sd.get("names", []))
    expected = {f"{name}:{port}" for name, port in APP_SERVICES.items()}
    assert expected <= targets, f"not scraped: {sorted(expected - targets)}"


# --------------------------------------------------------------------------- grafana

_PROMQL_WORDS = {
    # aggregations, functions and keywords that may appear bare (not followed by "(")
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "le",
}


def _metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (best effort, enough for dashboards)."""
    names: set[str] = set()
    # label_values(metric, label) and label_values(label) in variable queries
    for m in re.finditer(r"label_values\(\s*([^,)]*?)\s*(?:,[^)]*)?\)", expr):
        arg = m.group(1)
        if "," in m.group(0):  # first argument is a series selector
            names |= _metric_names(arg)
    expr = re.sub(r"label_values\([^)]*\)", " ", expr)
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range / subquery windows
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # dashboard variables
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?!\w)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_metric_name_extraction():
    assert _metric_names(
        'histogram_quantile(0.95, sum by (service, le) (rate(x_bucket{service=~"$service"}[$__rate_interval])))'
    ) == {"x_bucket"}
    assert _metric_names("sum(rate(a_total[5m])) / sum without (job) (b)") == {"a_total", "b"}
    assert _metric_names("label_values(http_requests_total, service)") == {"http_requests_total"}


def test_metric_names_are_registered_by_shared():
    """The names the dashboard may use are the ones shared/ actually registers."""
    prometheus_client = pytest.importorskip("prometheus_client")
    importlib.import_module("shared.metrics")
    importlib.import_module("shared.calendar")
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"],
                "summary": ["_count", "_sum", ""]}
    exported: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        exported.update(family.name + sfx for sfx in suffixes.get(family.type, [""]))
    assert METRIC_NAMES <= exported, f"not registered: {sorted(METRIC_NAMES - exported)}"


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "jiuzhu-services.json").read_text(encoding="utf-8"))


def _walk_panels(panels):
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))


def _dashboard_exprs(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in _walk_panels(dash.get("panels", [])) for t in p.get("targets", []) if t.get("expr")]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            exprs.append(query)
    return exprs


def test_dashboard_parses_and_uses_only_exported_metrics():
    dash = _dashboard()
    assert dash["uid"] and dash["title"]
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    exprs = _dashboard_exprs(dash)
    assert exprs, "dashboard has no queries"
    used: set[str] = set()
    for expr in exprs:
        names = _metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - METRIC_NAMES
        assert not unknown, f"dashboard uses metrics no service exports: {sorted(unknown)} in {expr!r}"
        used |= names
    assert used == METRIC_NAMES, f"dashboard has no panel for {sorted(METRIC_NAMES - used)}"
    panel_ids = [p["id"] for p in _walk_panels(dash["panels"])]
    assert len(panel_ids) == len(set(panel_ids)), "duplicate panel ids"


def test_dashboard_panels_show_required_views():
    exprs = _dashboard_exprs(_dashboard())
    assert any("http_requests_total" in e and "5.." in e for e in exprs), "no 5xx panel"
    for q in ("0.95", "0.99"):
        assert any(
            f"histogram_quantile({q}" in e and "http_request_duration_seconds_bucket" in e and "service" in e
            for e in exprs
        ), f"no p{q[2:]} latency panel"


def test_grafana_provisioning(compose):
    ds = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (source,) = [d for d in ds["datasources"] if d["type"] == "prometheus"]
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "jiuzhu.yml").read_text(encoding="utf-8")
    )
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    # The dashboard's panels use the provisioned data source.
    uids = {
        (p.get("datasource") or {}).get("uid")
        for p in _walk_panels(_dashboard()["panels"])
        if p.get("type") != "row"
    }
    assert uids == {source["uid"]}
    mounts = " ".join(str(v) for v in compose["services"]["grafana"].get("volumes", []))
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "deploy/grafana/dashboards:/var/lib/grafana/dashboards" in mounts


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_installs_the_project():
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    installs = []
    for op, rest in instructions:
        if op != "RUN":
            continue
        for part in re.split(r"&&|;", rest):
            argv = shlex.split(part)
            if argv[:2] == ["pip", "install"] or argv[1:4] == ["-m", "pip", "install"]:
                installs.append([a for a in argv if not a.startswith("-")])
    assert any("." in argv for argv in installs), f"no `pip install .` in {installs}"
    assert not any("[dev]" in a for argv in installs for a in argv), "the image must not install dev extras"

    copied = " ".join(rest for op, rest in instructions if op == "COPY")
    sources = {s.rstrip("/") for s in copied.split()}
    for required in ("pyproject.toml", "shared", "services"):
        assert required in sources, f"Dockerfile does not COPY {required}"
    users = [rest for op, rest in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    exposed = " ".join(rest for op, rest in instructions if op == "EXPOSE")
    assert "8001-8004" in exposed or all(str(p) in exposed for p in APP_SERVICES.values())
