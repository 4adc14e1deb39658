"""Fixtures for the deployment tests: the Debian tools (installed by deploy/install-tools.sh
when missing) and the paths of what they check. The stack fixtures come from tests/conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GRAFANA = ROOT / "grafana"
RULES = DEPLOY / "prometheus" / "rules" / "xsell.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
DASHBOARD = GRAFANA / "dashboards" / "xsell-stream.json"


@pytest.fixture(scope="session")
def deploy_tools() -> dict[str, str]:
    """prometheus, promtool, docker-compose and amtool from Debian, installed when missing."""
    done = subprocess.run(["bash", str(DEPLOY / "install-tools.sh")], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    names = ("prometheus", "promtool", "docker-compose", "amtool")
    tools = {name: shutil.which(name) for name in names}
    missing = [name for name, path in tools.items() if path is None]
    assert not missing, f"still missing after deploy/install-tools.sh: {missing}"
    return {name: str(path) for name, path in tools.items()}
