#!/usr/bin/env python3
"""Static checks of deploy/terraform, for want of a terraform binary on the test machine:
- every .tf and .tfvars file parses (python-hcl2);
- every variable has a description and a type, every output a description;
- module calls line up with the modules: each argument is a variable of the module,
  each variable without a default is passed, each `module.X.Y` used exists as an output;
- each environment's tfvars sets only known variables and all required ones, dev is
  scaled down against production, and each has its own state key with locking on.
A self-test first breaks a copy of the tree and expects the checks to notice.
(checkov runs separately, from scripts/test-delivery.sh.) Exits 1 on any failure."""
import pathlib, re, shutil, sys, tempfile
import hcl2

TF = pathlib.Path(__file__).resolve().parents[1]
META = {"source", "count", "for_each", "depends_on", "providers", "version"}
failures = []


def check(ok, what, quiet=False):
    if not quiet:
        print(("PASS" if ok else "FAIL") + " terraform: " + what)
    if not ok:
        failures.append(what)
    return ok


def val(v):
    """python-hcl2 wraps each attribute value in a one-element list."""
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def load(path):
    with open(path) as f:
        return hcl2.load(f)


def load_values(path):
    return {k: val(v) for k, v in load(path).items()}


def blocks(docs, kind):
    """{name: body} of `variable "name" {...}`-style blocks across parsed files."""
    out = {}
    for d in docs:
        for item in d.get(kind, []):
            for name, body in item.items():
                out[name.strip('"')] = body
    return out


def module_dir(directory):
    files = sorted(directory.glob("*.tf"))
    docs = [load(p) for p in files]
    text = "\n".join(p.read_text() for p in files)
    return docs, text


def io_problems(root):
    """Mismatches between module calls in `root` and the called modules."""
    problems = []
    docs, text = module_dir(root)
    calls = blocks(docs, "module")
    for call, body in calls.items():
        src = (root / val(body["source"])).resolve()
        mdocs, _ = module_dir(src)
        mvars, mouts = blocks(mdocs, "variable"), blocks(mdocs, "output")
        args = {k for k in body if k not in META and not k.startswith("__")}
        for a in sorted(args - set(mvars)):
            problems.append(f"module {call}: argument {a} is not a variable of {src.name}")
        for v, vbody in mvars.items():
            if "default" not in vbody and v not in args:
                problems.append(f"module {call}: required variable {v} not passed")
        for ref_call, out in re.findall(r"module\.([\w-]+)\.([\w-]+)", text):
            if ref_call not in calls:
                problems.append(f"module.{ref_call} is used but not declared")
            elif ref_call == call and out not in mouts:
                problems.append(f"module.{call}.{out} is used but {src.name} has no such output")
    return sorted(set(problems))


# Every file parses.
tf_dirs = sorted({p.parent for p in TF.rglob("*.tf")})
for p in sorted(TF.rglob("*.tf")) + sorted(TF.rglob("*.tfvars")) + sorted(TF.rglob("*.tfbackend")):
    try:
        load(p)
        check(True, f"{p.relative_to(TF)} parses")
    except Exception as e:  # the parser's own message says where
        check(False, f"{p.relative_to(TF)} parses: {e}")

# Variables and outputs documented and typed.
for d in tf_dirs:
    docs, _ = module_dir(d)
    rel = d.relative_to(TF) or "."
    for name, body in blocks(docs, "variable").items():
        check(bool(val(body.get("description"))) and "type" in body,
              f"{rel}: variable {name} has a description and a type", quiet=True)
    for name, body in blocks(docs, "output").items():
        check(bool(val(body.get("description"))), f"{rel}: output {name} has a description", quiet=True)
    n = len(blocks(docs, "variable"))
    check(all(bool(val(b.get("description"))) and "type" in b for b in blocks(docs, "variable").values()),
          f"{rel}: all {n} variables have a description and a type")

# Self-test: a broken copy must be caught.
with tempfile.TemporaryDirectory() as tmp:
    copy = pathlib.Path(tmp) / "tf"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns(".terraform*"))
    main = copy / "main.tf"
    main.write_text(main.read_text().replace('source       = "./modules/network"',
                                             'source       = "./modules/network"\n  no_such_input = 1', 1)
                    .replace("module.network.vpc_id", "module.network.no_such_output", 1))
    (copy / "modules/data/main.tf").write_text(
        (copy / "modules/data/main.tf").read_text() + '\nvariable "required_new" {\n  description = "x"\n  type = string\n}\n')
    found = io_problems(copy)
    check(any("no_such_input" in p for p in found), "self-test: an unknown module argument is caught")
    check(any("no_such_output" in p for p in found), "self-test: a missing module output is caught")
    check(any("required_new" in p for p in found), "self-test: a required variable not passed is caught")

problems = io_problems(TF)
check(not problems, "module inputs and outputs line up" + ("" if not problems else ": " + "; ".join(problems)))

# Environments.
root_docs, root_text = module_dir(TF)
root_vars = blocks(root_docs, "variable")
required = {v for v, b in root_vars.items() if "default" not in b}
tfvars = {p.name.split(".")[0]: load_values(p) for p in sorted((TF / "environments").glob("*.tfvars"))}
check(set(tfvars) == {"dev", "staging", "production"}, f"one tfvars per environment: {sorted(tfvars)}")
keys = set()
for env, values in tfvars.items():
    unknown = set(values) - set(root_vars)
    check(not unknown, f"{env}.tfvars sets only declared variables {sorted(unknown) or ''}")
    check(required <= set(values), f"{env}.tfvars sets every required variable ({', '.join(sorted(required))})")
    check(values.get("environment") == env, f"{env}.tfvars names its environment")
    backend = load_values(TF / "environments" / f"{env}.s3.tfbackend")
    check(backend.get("use_lockfile") is True and backend.get("encrypt") is True,
          f"{env}: state locked (use_lockfile) and encrypted")
    keys.add(backend["key"])
check(len(keys) == len(tfvars), "each environment has its own state key")
check(re.search(r'backend\s+"s3"\s*{[^}]*use_lockfile\s*=\s*true', root_text) is not None,
      "remote state: S3 backend with locking")
dev, prod = tfvars["dev"], tfvars["production"]
default = lambda env, k: env.get(k, val(root_vars[k].get("default")))
check(default(dev, "api_count") < default(prod, "api_count")
      and default(dev, "nat_gateways") < default(prod, "nat_gateways")
      and default(dev, "db_multi_az") is False and default(prod, "db_multi_az") is True
      and default(dev, "redis_replicas") == 0,
      "dev is scaled down (fewer tasks and NAT gateways, single-AZ database, no Redis replica)")
check('path                = "/readyz"' in (TF / "modules/service/alb.tf").read_text(),
      "the load balancer's health check uses /readyz")

print(f"terraform: {len(failures)} failed")
sys.exit(1 if failures else 0)
