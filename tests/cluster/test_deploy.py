"""deploy/: the cluster-launcher YAML against Ray's own schema, the KubeRay manifests against
what KubeRay's ray.io/v1 API requires, and both against the installed Ray and flowsim."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from flowsim import testing
from flowsim.config import apply_overrides, load_config

DEPLOY = testing.ROOT / "deploy"
KUBERAY = sorted((DEPLOY / "kuberay").glob("*.yaml"))
#: Kubernetes object names (RFC 1123 DNS subdomain labels, as KubeRay uses them in Services).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _ray_version() -> str:
    import ray

    return ray.__version__


def _image_tag(image: str) -> str:
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"


def test_cluster_launcher_yaml_passes_rays_schema() -> None:
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((DEPLOY / "cluster-launcher.yaml").read_text())
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    validate_config(config)  # what `ray up` runs: the schema plus its own checks
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command  # docs/security.md: token auth on a cluster


def test_kuberay_manifests_carry_what_ray_io_v1_requires() -> None:
    assert {path.name for path in KUBERAY} == {"raycluster.yaml", "rayjob.yaml"}
    for path in KUBERAY:
        manifest = yaml.safe_load(path.read_text())
        assert manifest["apiVersion"] == "ray.io/v1", path.name
        assert DNS_LABEL.match(manifest["metadata"]["name"]), path.name
        if manifest["kind"] == "RayCluster":
            _check_cluster_spec(manifest["spec"], path.name)
        else:
            assert manifest["kind"] == "RayJob", path.name
            spec = manifest["spec"]
            assert isinstance(spec["entrypoint"], str) and spec["entrypoint"], path.name
            assert isinstance(spec.get("shutdownAfterJobFinishes", False), bool)
            _check_cluster_spec(spec["rayClusterSpec"], path.name)


def _check_cluster_spec(spec: dict, where: str) -> None:
    """KubeRay's required fields (headGroupSpec; per group rayStartParams, template; per
    worker group groupName, minReplicas, maxReplicas), Kubernetes' (a container's name and
    image), and that the images run the installed Ray."""
    assert spec["rayVersion"] == _ray_version(), where
    head = spec["headGroupSpec"]
    groups = [("head", head)] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    for name, group in groups:
        params = group["rayStartParams"]
        # map[string]string in the CRD: a bare number or boolean is refused by the API server.
        assert all(isinstance(v, str) for v in params.values()), (where, name, params)
        containers = group["template"]["spec"]["containers"]
        assert containers, (where, name)
        for container in containers:
            assert DNS_LABEL.match(container["name"]), (where, name)
            assert container["image"], (where, name)
            limits = container["resources"]["limits"]
            assert "cpu" in limits and "memory" in limits, (where, name)
    for group in spec["workerGroupSpecs"]:
        assert DNS_LABEL.match(group["groupName"]), where
        assert 0 <= group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]
    head_container = head["template"]["spec"]["containers"][0]
    ports = {p["containerPort"] for p in head_container["ports"]}
    assert {6379, 8265} <= ports, where  # GCS and the job server that RayJob submits to
    assert head["rayStartParams"].get("num-cpus") == "0", where  # the head trains; no runners
    if "authOptions" in spec:
        assert spec["authOptions"]["mode"] == "token", where


def test_rayjob_entrypoint_is_a_valid_flowsim_train() -> None:
    """The entrypoint names a shipped scenario (the image copies scenarios/ to
    /home/ray/flowsim) and overrides that validate."""
    manifest = yaml.safe_load((DEPLOY / "kuberay" / "rayjob.yaml").read_text())
    words = shlex.split(manifest["spec"]["entrypoint"])
    assert words[:2] == ["flowsim", "train"]
    config_path = Path(words[2])
    assert config_path.parts[:4] == ("/", "home", "ray", "flowsim")
    local = testing.ROOT.joinpath(*config_path.parts[4:])
    assert local.is_file(), local
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    config = apply_overrides(load_config(local), overrides)
    assert config.sampler.num_workers == 24
    assert "--out" in words


@pytest.mark.parametrize("manifest", ["raycluster.yaml", "rayjob.yaml"])
def test_images_agree_with_the_dockerfile_and_the_launcher(manifest: str) -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    ray_arg = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M)
    assert ray_arg and ray_arg.group(1) == _ray_version()
    makefile = (testing.ROOT / "Makefile").read_text()
    torch_pin = re.search(r"torch==(\S+)", makefile)
    assert torch_pin and f"torch=={torch_pin.group(1)} " in dockerfile
    launcher = yaml.safe_load((DEPLOY / "cluster-launcher.yaml").read_text())
    text = (DEPLOY / "kuberay" / manifest).read_text()
    images = set(re.findall(r"image:\s*(\S+)", text))
    assert images == {launcher["docker"]["image"]}, images
