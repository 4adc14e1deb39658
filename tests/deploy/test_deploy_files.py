"""The deployment, validated offline: `docker-compose config` (Debian's, no engine needed),
kubernetes-validate against the Kubernetes schemas, promtool and amtool on the configs, and
the app config example loaded by the app's own loader."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from xsell_stream import config as config_module

from .conftest import DEPLOY, GRAFANA, ROOT

APP_SERVICES = {"connector", "worker", "exporter"}
SERVICES = APP_SERVICES | {"kafka", "redis", "prometheus", "alertmanager", "grafana"}
K8S_VERSION = "1.30.0"


def compose_config(deploy_tools: dict[str, str], tmp_path: Path,
                   compose_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of deploy/ and grafana/ with the two secret files
    made as deploy/README.md says."""
    shutil.copytree(DEPLOY, tmp_path / "deploy", dirs_exist_ok=True)
    shutil.copytree(GRAFANA, tmp_path / "grafana", dirs_exist_ok=True)
    secrets = tmp_path / "deploy" / "secrets"
    secrets.mkdir(exist_ok=True)
    shutil.copy(DEPLOY / "xsell.example.toml", secrets / "xsell.toml")
    (secrets / "grafana-admin-password").write_text("not-a-real-password\n")
    if compose_text is not None:
        (tmp_path / "deploy" / "docker-compose.yml").write_text(compose_text)
    return subprocess.run([deploy_tools["docker-compose"], "config"], cwd=tmp_path / "deploy",
                          capture_output=True, text=True, timeout=120)


def test_compose_file_is_valid_and_complete(deploy_tools, tmp_path):
    done = compose_config(deploy_tools, tmp_path)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    services = resolved["services"]
    assert set(services) == SERVICES
    assert set(resolved["volumes"]) == {"kafka-data", "redis-data", "prometheus-data",
                                        "alertmanager-data", "grafana-data"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] \
        == "yes"
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"] == [name, "--config", "/run/secrets/xsell_config"]
        assert {d: c["condition"] for d, c in service["depends_on"].items()} == {
            "kafka": "service_healthy", "redis": "service_healthy"}
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"] if ":" in v}
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards/xsell-stream"} <= mounts
    assert services["prometheus"]["volumes"][1].endswith(
        "deploy/prometheus/rules:/etc/prometheus/rules:ro")


def test_compose_validation_rejects_a_broken_file(deploy_tools, tmp_path):
    text = (DEPLOY / "docker-compose.yml").read_text()
    broken = text.replace("restart: unless-stopped\n    environment:",
                          "restart: unless-stopped\n    environment:\n      - [not, a, string]",
                          1)
    assert broken != text
    done = compose_config(deploy_tools, tmp_path, broken)
    assert done.returncode != 0


def test_no_secret_in_the_compose_file():
    text = (DEPLOY / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(?i)(password|secret|token|key)\w*\s*[:=]", line):
            assert re.search(r"__FILE:|/run/secrets/|^\s*(secrets|xsell_config|"
                             r"grafana_admin_password):|file: \./secrets/|^\s*-\s*\w+$", line), \
                line
    example = (DEPLOY / "xsell.example.toml").read_text()
    for value in re.findall(r'(?m)^(?:email_hash_key|secrets)\s*=\s*(.*)$', example):
        assert "CHANGE-ME" in value
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().split()


def test_the_example_config_loads_with_the_apps_loader(tmp_path):
    settings = config_module.load(DEPLOY / "xsell.example.toml")
    assert settings.kafka is not None and settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.redis is not None and settings.redis.url == "redis://redis:6379/0"
    assert (settings.connector.host, settings.connector.port) == ("0.0.0.0", 8080)
    assert (settings.exporter.host, settings.exporter.port) == ("0.0.0.0", 9108)
    assert settings.kafka.partitions == 4


@pytest.mark.parametrize("command", sorted(APP_SERVICES))
def test_the_commands_the_containers_run_exist(command):
    done = subprocess.run([sys.executable, "-m", "xsell_stream.cli", command, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout


def manifests() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def test_kubernetes_manifests_validate_against_the_schemas():
    kinds = []
    for name, doc in manifests():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        kinds.append((doc["kind"], doc["metadata"]["name"]))
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "xsell-stream", name
    assert sorted(kinds) == sorted([
        ("Namespace", "xsell-stream"),
        ("Deployment", "xsell-connector"), ("Service", "xsell-connector"),
        ("Deployment", "xsell-worker"), ("HorizontalPodAutoscaler", "xsell-worker"),
        ("Deployment", "xsell-exporter"), ("Service", "xsell-exporter"),
        ("StatefulSet", "redis"), ("Service", "redis"),
        ("StatefulSet", "kafka"), ("Service", "kafka")])


def test_kubernetes_validation_rejects_a_typo():
    (_, deployment), = [(n, d) for n, d in manifests() if d["kind"] == "Deployment"][:1]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_workers_scale_up_to_the_partition_count():
    settings = config_module.load(DEPLOY / "xsell.example.toml")
    assert settings.kafka is not None
    (hpa,) = [d for _, d in manifests() if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] == settings.kafka.partitions
    for _, doc in manifests():
        if doc["kind"] == "Deployment":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            assert container["args"][0] in APP_SERVICES
            assert container["args"][1:] == ["--config", "/etc/xsell/xsell.toml"]


def test_prometheus_and_alertmanager_configs(deploy_tools, tmp_path):
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "xsell-exporter"]
    assert job["static_configs"][0]["targets"] == ["exporter:9108"]
    # promtool with the rule glob pointing at the repository's rules.
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([deploy_tools["promtool"], "check", "config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 19 rules found" in done.stdout
    done = subprocess.run([deploy_tools["amtool"], "check-config",
                           str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 receivers" in done.stdout


def test_dockerfile_builds_the_app_from_files_that_exist():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM python:3\.11-", text)
    copied = re.findall(r"(?m)^COPY (.+) \S+$", text)
    sources = [s for line in copied for s in line.split()]
    assert sources == ["pyproject.toml", "README.md", "xsell_stream", "connectors"]
    for source in sources:
        assert (ROOT / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for source in sources:
        assert f"!{source}" in ignore or f"!{source}/" in ignore
    assert re.search(r"(?m)^USER 10001$", text)
    assert re.search(r'(?m)^ENTRYPOINT \["xsell-stream"\]$', text)
