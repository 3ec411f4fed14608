#!/usr/bin/env python3
"""Checks Retain's Kubernetes manifests, offline.

    python3 deploy/check.py

For each overlay under deploy/kustomize/overlays it renders the objects
with `kubectl kustomize`, validates every object against the Kubernetes
1.31 schemas (the pinned `kubernetes-validate` package from PyPI, strict:
an unknown field fails), and checks the policy a platform team reviews:

- every pod runs as non-root with the RuntimeDefault seccomp profile, and
  every container (init containers included) has a read-only root file
  system, no privilege escalation, all capabilities dropped, CPU and memory
  requests and limits, and an image pinned by tag or digest (not latest);
- every service Deployment has gRPC readiness and liveness probes (liveness
  on the "liveness" health name), a preStop pause, a grace period longer
  than the drain the configuration asks for, a HorizontalPodAutoscaler, a
  PodDisruptionBudget, a ClusterIP and a headless Service;
- no secret is inlined: no Secret carries a password or token, no literal
  environment variable holds one, and the configuration the ConfigMap
  carries has no database URL, token or SMTP password;
- a default-deny NetworkPolicy covers every Retain pod;
- no init container mounts the tokens Secret (it checks the schema and
  needs no token).

The production overlay (`prod`) must also name every destination: each
egress rule but DNS has a `to`, the gRPC ingress names the namespaces it
admits, and server reflection is off.

`--self-test` first breaks a rendered copy in each of those ways and
fails unless the checks catch every break. Exit 0 when all pass; 1 with
each problem on its own line otherwise. Without kubectl it prints why and
exits 0 (set RETAIN_REQUIRE_KUBECTL=1 to fail instead).
"""

import base64
import copy
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

KUBERNETES_VERSION = "1.31.0"
ROOT = Path(__file__).resolve().parent / "kustomize"
SERVICES = ["ingestion", "metrics", "health", "notification"]
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|DATABASE__URL", re.I)


def render(overlay: Path) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def name(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def validate(objects: list[dict]) -> list[str]:
    import kubernetes_validate

    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{name(obj)}: does not validate: {e.message} at {list(e.path)}")
        except Exception as e:  # a kind the schemas do not know, a bad version…
            problems.append(f"{name(obj)}: cannot be validated: {e}")
    return problems


def config_of(objects: list[dict]) -> dict:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "retain.toml" in obj.get("data", {}):
            return tomllib.loads(obj["data"]["retain.toml"])
    raise SystemExit("no ConfigMap carries retain.toml")


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return tag not in ("", "latest")


def check_pod(owner: str, pod: dict) -> list[str]:
    problems = []
    sc = pod.get("securityContext", {})
    if sc.get("runAsNonRoot") is not True:
        problems.append(f"{owner}: pod securityContext.runAsNonRoot is not true")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{owner}: pod seccompProfile is not RuntimeDefault")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        where = f"{owner} container {c['name']}"
        csc = c.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root file system is not read-only")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation is not disabled")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: capabilities are not all dropped")
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            for what in ("cpu", "memory"):
                if what not in resources.get(kind, {}):
                    problems.append(f"{where}: no {what} {kind[:-1]}")
        if not image_pinned(c.get("image", "")):
            problems.append(f"{where}: image {c.get('image')!r} is not pinned (tag or digest, not latest)")
        for env in c.get("env", []):
            if "value" in env and SECRET_NAME.search(env["name"]) and env["value"]:
                problems.append(f"{where}: {env['name']} is inlined; take it from a Secret")
    return problems


def selects(selector: dict, labels: dict) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def check_service(deployment: dict, objects: list[dict], config: dict) -> list[str]:
    owner = name(deployment)
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    main = next((c for c in pod["containers"] if c["name"] == "retain"), None)
    if main is None:
        return [f"{owner}: no container named retain"]
    readiness = main.get("readinessProbe", {}).get("grpc")
    liveness = main.get("livenessProbe", {}).get("grpc")
    if not readiness:
        problems.append(f"{owner}: no gRPC readiness probe")
    if not liveness or liveness.get("service") != "liveness":
        problems.append(f"{owner}: no gRPC liveness probe on the 'liveness' health name")
    pause = main.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if pause <= 0:
        problems.append(f"{owner}: no preStop pause")
    server = config.get("server", {})
    drain_s = (
        pause
        + server.get("readiness_delay_ms", 0) / 1000
        + 2 * server.get("shutdown_grace_ms", 30000) / 1000
    )
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= drain_s:
        problems.append(
            f"{owner}: terminationGracePeriodSeconds {grace} is not longer than the drain ({drain_s:g} s)"
        )
    target = deployment["metadata"]["name"]
    if not any(
        o["kind"] == "HorizontalPodAutoscaler"
        and o["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        and o["spec"]["scaleTargetRef"]["name"] == target
        for o in objects
    ):
        problems.append(f"{owner}: no HorizontalPodAutoscaler")
    if not any(o["kind"] == "PodDisruptionBudget" and selects(o["spec"]["selector"], labels) for o in objects):
        problems.append(f"{owner}: no PodDisruptionBudget")
    services = [o for o in objects if o["kind"] == "Service" and selects({"matchLabels": o["spec"].get("selector", {})}, labels)]
    if not any(s["spec"].get("clusterIP") != "None" for s in services):
        problems.append(f"{owner}: no ClusterIP Service")
    if not any(s["spec"].get("clusterIP") == "None" for s in services):
        problems.append(f"{owner}: no headless Service")
    return problems


def open_peer(peer: dict) -> bool:
    """Whether a NetworkPolicy peer admits any address or any namespace."""
    block = peer.get("ipBlock")
    if block is not None and block.get("cidr") in ("0.0.0.0/0", "::/0"):
        return True
    for key in ("namespaceSelector", "podSelector"):
        selector = peer.get(key)
        if selector is None:
            continue
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            # An empty namespace selector is every namespace; an empty pod
            # selector beside no namespace selector is this namespace only.
            if key == "namespaceSelector":
                return True
        if any(e.get("operator") in ("Exists", "DoesNotExist", "NotIn") for e in selector.get("matchExpressions", [])):
            return True
    return False


def check_production(objects: list[dict], config: dict) -> list[str]:
    problems = []
    for obj in objects:
        if obj["kind"] != "NetworkPolicy" or obj["metadata"]["name"] == "retain-egress-dns":
            continue
        for rule in obj["spec"].get("egress", []):
            if not rule.get("to") or any(open_peer(p) for p in rule["to"]):
                problems.append(f"{name(obj)}: an egress rule opens its ports to any address; name the destination")
        for rule in obj["spec"].get("ingress", []):
            if not rule.get("from") or any(open_peer(p) for p in rule["from"]):
                problems.append(f"{name(obj)}: an ingress rule admits any address or namespace; name the namespaces")
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        for c in obj["spec"]["template"]["spec"].get("containers", []):
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            off = env.get("RETAIN__SERVER__REFLECTION", str(config.get("server", {}).get("reflection", True)).lower())
            if off != "false":
                problems.append(f"{name(obj)} container {c['name']}: server reflection is on")
    return problems


def check(objects: list[dict], production: bool = False) -> list[str]:
    problems = []
    config = config_of(objects)
    if config.get("database", {}).get("url"):
        problems.append("ConfigMap retain.toml: database.url is inlined; take it from a Secret")
    if config.get("auth", {}).get("tokens"):
        problems.append("ConfigMap retain.toml: auth.tokens are inlined; use auth.tokens_file from a Secret")
    if config.get("notification", {}).get("email", {}).get("smtp_password"):
        problems.append("ConfigMap retain.toml: the SMTP password is inlined; take it from a Secret")
    if not config.get("server", {}).get("max_connection_age_ms"):
        problems.append("ConfigMap retain.toml: no server.max_connection_age_ms (clients never rebalance)")
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            problems += check_pod(name(obj), obj["spec"]["template"]["spec"])
            for c in obj["spec"]["template"]["spec"].get("initContainers", []):
                if any(m["name"] == "tokens" for m in c.get("volumeMounts", [])):
                    problems.append(f"{name(obj)} init container {c['name']}: mounts the tokens Secret it does not need")
        if obj["kind"] == "Secret":
            for key, value in {**obj.get("data", {}), **obj.get("stringData", {})}.items():
                text = str(value)
                if key in obj.get("data", {}):
                    text = base64.b64decode(value).decode("utf-8", "replace")
                if re.search(r"://[^/@:]+:[^/@]+@", text) or SECRET_NAME.search(key):
                    problems.append(f"{name(obj)}: {key} holds a credential; create the Secret in the cluster instead")
    deployments = [
        o for o in objects
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") in SERVICES
    ]
    found = sorted(d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments)
    if found != sorted(SERVICES):
        problems.append(f"service Deployments are {found}, not the four services")
    for d in deployments:
        problems += check_service(d, objects, config)
    if not any(
        o["kind"] == "NetworkPolicy"
        and o["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/part-of": "retain"}
        and set(o["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not o["spec"].get("ingress")
        and not o["spec"].get("egress")
        for o in objects
    ):
        problems.append("no default-deny NetworkPolicy over every Retain pod")
    if production:
        problems += check_production(objects, config)
    return problems


def self_test(objects: list[dict], production: bool) -> list[str]:
    """Each break must be caught: a check that cannot fail checks nothing."""

    def first(objs, kind, component=None):
        for o in objs:
            labels = o.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
            if o["kind"] == kind and (component is None or labels.get("app.kubernetes.io/component") == component):
                return o
        raise SystemExit(f"self-test: no {kind}")

    def container(objs):
        return first(objs, "Deployment", "ingestion")["spec"]["template"]["spec"]["containers"][0]

    breaks = {
        "writable root file system": lambda o: container(o)["securityContext"].pop("readOnlyRootFilesystem"),
        "capabilities kept": lambda o: container(o)["securityContext"].pop("capabilities"),
        "latest image": lambda o: container(o).update(image="retain:latest"),
        "no memory limit": lambda o: container(o)["resources"]["limits"].pop("memory"),
        "no liveness probe": lambda o: container(o).pop("livenessProbe"),
        "short grace period": lambda o: first(o, "Deployment", "ingestion")["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=10
        ),
        "root pod": lambda o: first(o, "Deployment", "health")["spec"]["template"]["spec"]["securityContext"].pop(
            "runAsNonRoot"
        ),
        "no HPA": lambda o: o.remove(first(o, "HorizontalPodAutoscaler")),
        "no PDB": lambda o: o.remove(first(o, "PodDisruptionBudget")),
        "inlined password": lambda o: container(o)["env"].append(
            {"name": "RETAIN__NOTIFICATION__EMAIL__SMTP_PASSWORD", "value": "hunter2"}
        ),
        "inlined secret": lambda o: o.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "leak"},
                "stringData": {"url": "postgres://retain:hunter2@db/retain"},
            }
        ),
        "unknown field": lambda o: container(o).update(readOnlyRootFilesytem=True),
        "tokens in the init container": lambda o: first(o, "Deployment", "ingestion")["spec"]["template"]["spec"][
            "initContainers"
        ][0]["volumeMounts"].append({"name": "tokens", "mountPath": "/etc/retain/tokens"}),
    }
    if production:
        def policy(objs, policy_name):
            return next(x for x in objs if x["kind"] == "NetworkPolicy" and x["metadata"]["name"] == policy_name)

        breaks.update(
            {
                "egress to any address": lambda o: policy(o, "retain-egress-database")["spec"]["egress"][0].pop("to"),
                "egress to 0.0.0.0/0": lambda o: policy(o, "retain-egress-smtp")["spec"]["egress"][0].update(
                    to=[{"ipBlock": {"cidr": "0.0.0.0/0"}}]
                ),
                "egress to every namespace": lambda o: policy(o, "retain-egress-otlp")["spec"]["egress"][0].update(
                    to=[{"namespaceSelector": {}}]
                ),
                "ingress from any namespace by Exists": lambda o: policy(o, "retain-grpc-from-clients")["spec"][
                    "ingress"
                ][0]["from"][0].update(
                    namespaceSelector={"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}
                ),
                "ingress from any namespace": lambda o: policy(o, "retain-grpc-from-clients")["spec"]["ingress"][0][
                    "from"
                ][0].update(namespaceSelector={}),
                "reflection on": lambda o: container(o).update(
                    env=[e for e in container(o)["env"] if e["name"] != "RETAIN__SERVER__REFLECTION"]
                ),
            }
        )
    missed = []
    for what, brk in breaks.items():
        broken = copy.deepcopy(objects)
        brk(broken)
        problems = check(broken, production) + (validate(broken) if what == "unknown field" else [])
        if not problems:
            missed.append(f"self-test: the checks did not catch: {what}")
    return missed


def main() -> int:
    if shutil.which("kubectl") is None:
        reason = "kubectl is not installed: the manifests were not rendered or checked"
        if os.environ.get("RETAIN_REQUIRE_KUBECTL") == "1":
            print(f"error: {reason}")
            return 1
        print(f"skipped: {reason}")
        return 0
    problems = []
    for overlay in sorted((ROOT / "overlays").iterdir()):
        objects = render(overlay)
        production = overlay.name == "prod"
        found = validate(objects) + check(objects, production)
        if "--self-test" in sys.argv:
            found += self_test(objects, production)
        kinds = sorted({o["kind"] for o in objects})
        print(f"{overlay.name}: {len(objects)} objects ({', '.join(kinds)}), {len(found)} problem(s)")
        problems += [f"{overlay.name}: {p}" for p in found]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
