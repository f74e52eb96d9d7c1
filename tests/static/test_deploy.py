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
    for cls in (ServiceSettings, TasksSettings, PointsSettings, RedeemSettings, AuditSettings):
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
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
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
