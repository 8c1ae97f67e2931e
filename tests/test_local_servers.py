"""The local Weaviate and Jaeger definitions agree with the build script and say what they bind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from apps.cli import local_servers
from apps.cli.local_servers import JaegerPorts, WeaviatePorts, jaeger_config, weaviate_environment
from tests.support.paths import REPO_ROOT


def test_the_pinned_versions_are_the_ones_the_build_script_builds() -> None:
    script = (REPO_ROOT / local_servers.BUILD_SCRIPT).read_text()
    pinned = dict(re.findall(r'^(\w+_VERSION)="\$\{\w+:-([^}]+)\}"', script, re.MULTILINE))
    assert pinned == {
        "WEAVIATE_VERSION": local_servers.WEAVIATE_VERSION,
        "JAEGER_VERSION": local_servers.JAEGER_VERSION,
    }
    # The cache folders the script writes are the ones this module looks in.
    assert "weaviate-$WEAVIATE_VERSION" in script
    assert (
        local_servers.BINARIES["weaviate"].parent.name == f"weaviate-{pinned['WEAVIATE_VERSION']}"
    )
    assert "jaeger-$JAEGER_VERSION" in script
    assert local_servers.BINARIES["jaeger"].parent.name == f"jaeger-{pinned['JAEGER_VERSION']}"


def test_jaeger_listens_only_on_the_chosen_loopback_ports() -> None:
    ports = JaegerPorts(otlp_grpc=1, otlp_http=2, query_http=3, query_grpc=4, health=5)
    config = yaml.safe_load(jaeger_config(ports))
    endpoints = re.findall(r"endpoint: (\S+)", jaeger_config(ports))
    assert sorted(endpoints) == [f"127.0.0.1:{n}" for n in range(1, 6)]
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"  # no port 8888


@pytest.mark.parametrize("keys", [(), ("k1", "k2")])
def test_weaviate_runs_one_node_with_adjacent_cluster_ports(keys: tuple[str, ...]) -> None:
    env = weaviate_environment(Path("/d"), WeaviatePorts(9, 10, 20, 30), keys)
    assert (env["CLUSTER_GOSSIP_BIND_PORT"], env["CLUSTER_DATA_BIND_PORT"]) == ("20", "21")
    assert (env["RAFT_PORT"], env["RAFT_INTERNAL_RPC_PORT"], env["GRPC_PORT"]) == ("30", "31", "10")
    assert env["DEFAULT_VECTORIZER_MODULE"] == "none"
    anonymous = env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"]
    assert anonymous == ("false" if keys else "true")
    assert env.get("AUTHENTICATION_APIKEY_ALLOWED_KEYS") == (",".join(keys) if keys else None)
