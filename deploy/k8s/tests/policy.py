#!/usr/bin/env python3
"""Renders every overlay with `kubectl kustomize`, validates the output against the
Kubernetes schemas (kubernetes-validate, strict), and applies pricehub's policies:
non-root, hardened containers, probes, requests and limits, pinned images, the API's
rollout and drain contract, production-only HPA/PDB/topology spread, dev copies side by
side. A self-test first feeds known-bad objects through the policies to show they fail.
Prints PASS/FAIL lines; exits 1 on any failure."""
import copy, pathlib, re, subprocess, sys, tempfile
import yaml

K8S = pathlib.Path(__file__).resolve().parents[1]
RULES = K8S.parents[0] / "prometheus" / "rules"
KUBE_VERSION = "1.32.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
failures = []


def check(ok, what):
    print(("PASS" if ok else "FAIL") + " k8s: " + what)
    if not ok:
        failures.append(what)


def render(path):
    out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return [d for d in yaml.safe_load_all(out.stdout) if d], out.stdout


def containers(obj):
    spec = obj["spec"]["template"]["spec"]
    return spec, spec.get("containers", []) + spec.get("initContainers", [])


def image_pinned(image):
    if "@sha256:" in image:
        return re.search(r"@sha256:[0-9a-f]{64}$", image) is not None
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and "." in name.split("/")[0]


def violations(obj):
    """Policy violations of one workload, as strings."""
    v = []
    kind, name = obj["kind"], obj["metadata"]["name"]
    pod, cs = containers(obj)
    psc = pod.get("securityContext", {})
    if pod.get("automountServiceAccountToken") is not False:
        v.append("mounts a service account token")
    for c in cs:
        sc, where = c.get("securityContext", {}), f"{kind}/{name}/{c['name']}"
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
                and sc.get("runAsUser", psc.get("runAsUser", 1)) != 0):
            v.append(f"{where}: may run as root")
        if sc.get("allowPrivilegeEscalation") is not False:
            v.append(f"{where}: allows privilege escalation")
        if sc.get("readOnlyRootFilesystem") is not True:
            v.append(f"{where}: writable root filesystem")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            v.append(f"{where}: keeps capabilities")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp != "RuntimeDefault":
            v.append(f"{where}: seccomp profile {seccomp}")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(part, {}):
                    v.append(f"{where}: no {part}.{r}")
        if not image_pinned(c.get("image", "")):
            v.append(f"{where}: image {c.get('image')!r} is not pinned (registry/name:version or @sha256)")
        if kind != "Job":
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    v.append(f"{where}: no {probe}")
    return v


def self_test(docs):
    api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "pricehub-api")
    check(violations(api) == [], "self-test: the rendered API Deployment passes the policies")
    for label, mutate, needle in [
        ("root user", lambda c, p: p["securityContext"].update(runAsUser=0), "may run as root"),
        ("no readiness probe", lambda c, p: c.pop("readinessProbe"), "no readinessProbe"),
        ("no memory limit", lambda c, p: c["resources"]["limits"].pop("memory"), "no limits.memory"),
        ("image :latest", lambda c, p: c.update(image="ghcr.io/x/pricehub:latest"), "not pinned"),
        ("bare image", lambda c, p: c.update(image="pricehub"), "not pinned"),
        ("capabilities kept", lambda c, p: c["securityContext"].pop("capabilities"), "keeps capabilities"),
    ]:
        bad = copy.deepcopy(api)
        pod = bad["spec"]["template"]["spec"]
        mutate(pod["containers"][0], pod)
        check(any(needle in x for x in violations(bad)), f"self-test: a Deployment with {label} is refused")


def validate_schemas(text, overlay):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        out = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
                              "-k", KUBE_VERSION, f.name], capture_output=True, text=True)
    errors = [l for l in (out.stdout + out.stderr).splitlines()
              if l.strip() and "Couldn't find schema for kind" not in l]
    check(out.returncode == 0 and not errors,
          f"{overlay}: validates against the Kubernetes {KUBE_VERSION} schemas (strict)"
          + ("" if not errors else ": " + "; ".join(errors[:5])))


def by(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def configmap_int(docs, key):
    return int(by(docs, "ConfigMap", "pricehub-config")[0]["data"].get(key, "0"))


def check_overlay(name, docs, text):
    validate_schemas(text, name)
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    ns = by(docs, "Namespace")
    check(len(ns) == 1 and namespaces == {ns[0]["metadata"]["name"]},
          f"{name}: everything in its own namespace {ns[0]['metadata']['name'] if ns else None}")
    check(not by(docs, "Secret"), f"{name}: no Secret objects (values never in the repository)")
    for d in docs:
        if d["kind"] in WORKLOADS:
            v = violations(d)
            check(not v, f"{name}: {d['kind']}/{d['metadata']['name']} meets the policies"
                  + ("" if not v else ": " + "; ".join(v)))
    api = by(docs, "Deployment", "pricehub-api")[0]
    spec = api["spec"]
    check(spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, f"{name}: API rollout has maxUnavailable 0")
    c = spec["template"]["spec"]["containers"][0]
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    need = pre + configmap_int(docs, "PRICEHUB_DRAIN_DELAY") + configmap_int(docs, "PRICEHUB_SHUTDOWN_TIMEOUT")
    grace = spec["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    check(pre > 0 and grace > need,
          f"{name}: API preStop pause ({pre}s) and grace period {grace}s > preStop + drain + shutdown ({need}s)")
    probes = {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    check(probes == {"startupProbe": "/livez", "readinessProbe": "/readyz", "livenessProbe": "/livez"},
          f"{name}: API probes on /livez and /readyz")
    job = by(docs, "Job", "pricehub-migrate")
    check(len(job) == 1 and job[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"],
          f"{name}: a migration Job runs `pricehub migrate`")
    check(by(docs, "ConfigMap", "pricehub-config")[0]["data"].get("PRICEHUB_MIGRATE") == "false",
          f"{name}: long-running processes leave migrations to the Job")
    sts = by(docs, "StatefulSet", "pricehub-collector")
    check(len(sts) == 1 and sts[0]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "spool",
          f"{name}: collector is a StatefulSet with a spool volume claim")
    check(len(by(docs, "Deployment", "pricehub-provider")) == 1, f"{name}: provider Deployment")
    check(len(by(docs, "NetworkPolicy")) >= 2, f"{name}: NetworkPolicies")
    for svc in by(docs, "Service"):
        sel = svc["spec"]["selector"]
        matched = [d for d in docs if d["kind"] in WORKLOADS - {"Job"} and all(
            d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        check(len(matched) == 1, f"{name}: Service {svc['metadata']['name']} selects one workload")
    prod = name == "production"
    has_spread = bool(spec["template"]["spec"].get("topologySpreadConstraints"))
    check(bool(by(docs, "HorizontalPodAutoscaler")) == prod, f"{name}: HPA {'present' if prod else 'absent'}")
    check(bool(by(docs, "PodDisruptionBudget")) == prod, f"{name}: PDB {'present' if prod else 'absent'}")
    check(has_spread == prod, f"{name}: topology spread {'present' if prod else 'absent'}")
    if prod:
        hpa = by(docs, "HorizontalPodAutoscaler")[0]["spec"]
        pdb = by(docs, "PodDisruptionBudget")[0]["spec"]
        check(hpa["minReplicas"] >= 2 and hpa["minReplicas"] <= spec["replicas"] <= hpa["maxReplicas"],
              "production: replicas within the HPA's range, at least 2")
        check(pdb["selector"]["matchLabels"] == spec["selector"]["matchLabels"],
              "production: PDB selects the API pods")
    if name == "dev":
        counts = {d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
        check(set(counts.values()) == {1}, f"dev: one replica of everything {counts}")
        check(all(d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "32Mi"
                  for d in docs if d["kind"] in ("Deployment", "StatefulSet")), "dev: small requests")
    monitoring = by(docs, "PrometheusRule")
    if name in ("staging", "production"):
        groups = []
        for path in sorted(RULES.glob("*.y*ml")):
            groups += (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        check(len(monitoring) == 1 and monitoring[0]["spec"]["groups"] == groups,
              f"{name}: PrometheusRule carries deploy/prometheus/rules ({len(groups)} groups)")
        check(len(by(docs, "ServiceMonitor")) == 1, f"{name}: ServiceMonitor")


def side_by_side():
    """Two dev copies from the one dev overlay, in two namespaces, share nothing."""
    with tempfile.TemporaryDirectory(dir=K8S / "overlays") as tmp:
        keys = []
        for who in ("alice", "bob"):
            d = pathlib.Path(tmp) / who
            d.mkdir()
            (d / "kustomization.yaml").write_text(
                f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"namespace: pricehub-dev-{who}\nresources:\n  - ../../dev\n")
            docs, err = render(d)
            check(docs is not None, f"dev copy {who} renders" + ("" if docs else f": {err}"))
            if docs is None:
                return
            keys.append({(x["kind"], x["metadata"].get("namespace"), x["metadata"]["name"]) for x in docs})
        check(not (keys[0] & keys[1]), "two dev copies side by side share no object")


for overlay in ("dev", "staging", "production"):
    docs, text = render(K8S / "overlays" / overlay)
    check(docs is not None, f"{overlay}: renders with kubectl kustomize" + ("" if docs else f": {text}"))
    if docs is None:
        continue
    if overlay == "dev":
        self_test(docs)
    check_overlay(overlay, docs, text)
side_by_side()
print(f"k8s: {len(failures)} failed")
sys.exit(1 if failures else 0)
