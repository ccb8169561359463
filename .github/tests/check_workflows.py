#!/usr/bin/env python3
"""Structural checks of .github/workflows that actionlint and zizmor do not make:
- every `uses:` is pinned to a full 40-hex commit SHA with a version comment;
- every job has `permissions` and `timeout-minutes`, the workflow defaults to `{}`
  permissions and has `concurrency`;
- every `run:` step is nothing but calls of scripts that exist in the repository and are
  exercised by the test command (named in scripts/test.sh, a stage script it runs, or a
  test under tests/);
- release.yml promotes the digest built once (production needs build and staging and
  never builds), production sits behind an Environment, migrations come before rollout.
Prints PASS/FAIL per check; exits 1 on any failure."""
import pathlib, re, sys
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
WF = ROOT / ".github" / "workflows"
failures = []


def check(ok, what):
    print(("PASS" if ok else "FAIL") + " workflows: " + what)
    if not ok:
        failures.append(what)


def exercised_text():
    """What the test command runs: scripts/test.sh, the stage scripts it names, tests/."""
    texts, seen = [], set()
    todo = [ROOT / "scripts" / "test.sh"]
    while todo:
        p = todo.pop()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        t = p.read_text()
        texts.append(t)
        for ref in re.findall(r"(?:scripts|\.github/tests|deploy)/[\w./-]+\.sh", t):
            todo.append(ROOT / ref)
    texts += [p.read_text() for p in (ROOT / "tests").rglob("*.rs")]
    return "\n".join(texts)


EXERCISED = exercised_text()
SCRIPT_CALL = re.compile(r'^(?:bash\s+)?(\.ci/run|scripts/[\w./-]+)(?:\s|$)')

for path in sorted(WF.glob("*.yml")):
    name = path.name
    raw = path.read_text()
    doc = yaml.safe_load(raw)
    check(doc.get("permissions") == {}, f"{name}: top-level permissions are {{}}")
    check("concurrency" in doc, f"{name}: has concurrency")
    for line in raw.splitlines():
        m = re.search(r"uses:\s*([^\s#]+)(.*)$", line)
        if not m or m.group(1).startswith("./"):
            continue
        ref, comment = m.group(1), m.group(2)
        check(re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) is not None,
              f"{name}: {ref.split('@')[0]} pinned to a full commit SHA")
        check(re.search(r"#\s*v?\d|#\s*stable", comment) is not None,
              f"{name}: {ref.split('@')[0]} pin has a version comment")
    for job_id, job in doc["jobs"].items():
        check("permissions" in job, f"{name}: job {job_id} sets its own permissions")
        check(isinstance(job.get("timeout-minutes"), int), f"{name}: job {job_id} has a timeout")
        for step in job.get("steps", []):
            if "run" not in step:
                continue
            lines = [l.strip() for l in step["run"].splitlines()
                     if l.strip() and not l.strip().startswith("#")]
            for l in lines:
                m = SCRIPT_CALL.match(l)
                check(m is not None, f"{name}: {job_id}: run step '{l}' calls a repository script")
                if not m:
                    continue
                script = m.group(1)
                check((ROOT / script).is_file(), f"{name}: {job_id}: {script} exists")
                check(script == ".ci/run" or script in EXERCISED,
                      f"{name}: {job_id}: {script} is exercised by the test command")

rel = yaml.safe_load((WF / "release.yml").read_text())
jobs = rel["jobs"]
prod = jobs["production"]
check(set(prod["needs"]) >= {"build", "staging"}, "release.yml: production needs build and staging")
check(prod.get("environment", {}).get("name") == "production",
      "release.yml: production runs in the `production` Environment (required reviewers)")
check(not any("build-push-action" in s.get("uses", "") for j in ("staging", "production")
              for s in jobs[j]["steps"]), "release.yml: staging and production never build")
for env in ("staging", "production"):
    runs = [s.get("run", "") for s in jobs[env]["steps"]]
    deploy = next(i for i, r in enumerate(runs) if "release.sh deploy" in r)
    smoke = next(i for i, r in enumerate(runs) if "smoke.sh" in r)
    rollback = [s for s in jobs[env]["steps"] if "release.sh rollback" in s.get("run", "")]
    check(deploy < smoke, f"release.yml: {env}: smoke test after the deploy")
    check(len(rollback) == 1 and rollback[0].get("if") == "failure()",
          f"release.yml: {env}: automatic rollback on failure")
    denv = jobs[env]["steps"][deploy].get("env", {})
    check(denv.get("DIGEST") == "${{ needs.build.outputs.digest }}"
          and denv.get("IMAGE") == "${{ needs.build.outputs.image }}",
          f"release.yml: {env}: deploys the image and digest the build job pushed")
build = {s.get("id"): s for s in jobs["build"]["steps"]}
push = build["push"]["with"]
check(push.get("platforms") == "linux/amd64,linux/arm64", "release.yml: multi-arch build")
check(push.get("sbom") is True and "mode=max" in str(push.get("provenance")),
      "release.yml: SBOM and provenance")
check("BUILD_NUMBER=${{ github.run_number }}" in push.get("build-args", ""),
      "release.yml: the run number is the build number")

# The build arguments release.yml passes must be the Dockerfile's, and BUILD_NUMBER must
# reach both the compiled binary (/version) and the image label.
dockerfile = ROOT / "Dockerfile"
if dockerfile.is_file():
    text = dockerfile.read_text()
    declared = set(re.findall(r"^ARG\s+(\w+)", text, re.M))
    passed = {l.split("=", 1)[0].strip() for l in push.get("build-args", "").splitlines() if "=" in l}
    check(passed <= declared, f"release.yml: build args {sorted(passed)} are ARGs of the Dockerfile"
          + ("" if passed <= declared else f" (missing {sorted(passed - declared)})"))
    stages = re.split(r"^FROM\s", text, flags=re.M)[1:]
    build_stage = next((st for st in stages if "cargo build" in st), "")
    final_stage = stages[-1] if stages else ""
    check(re.search(r"^ARG\s+BUILD_NUMBER", build_stage, re.M) is not None
          and re.search(r"BUILD_NUMBER=\"?\$\{?BUILD_NUMBER", build_stage) is not None,
          "Dockerfile: BUILD_NUMBER reaches cargo build (and so /version)")
    check(re.search(r"^ARG\s+BUILD_NUMBER", final_stage, re.M) is not None
          and re.search(r"org\.opencontainers\.image\.version=\"?[^\n]*\$\{BUILD_NUMBER\}", final_stage) is not None,
          "Dockerfile: BUILD_NUMBER reaches the image label org.opencontainers.image.version")
else:
    in_ci = __import__("os").environ.get("CI") in ("true", "1")
    print(("FAIL" if in_ci else "SKIP") + " workflows: no Dockerfile in this tree to check the build args against")
    if in_ci:
        failures.append("Dockerfile missing")

print(f"workflows: {len(failures)} failed")
sys.exit(1 if failures else 0)
