#!/usr/bin/env python3
"""Checks of the observability kit, used by scripts/test-observability.sh.

  check.py static               dashboards are valid, every alert has a promtool test and
                                a runbook section
  check.py live PROMETHEUS_URL  every panel query, recording rule and alert expression
                                parses and returns at least one series from a Prometheus
                                that scrapes real pricehub processes, and every metric
                                they name exists there
  check.py exprs                prints every expression (panels, rules, alerts), one a line

Prints one PASS/FAIL line per check; exits 1 on any failure.
"""

import glob
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = sorted(glob.glob(os.path.join(ROOT, "deploy/prometheus/rules/*.yml")))
TESTS = sorted(glob.glob(os.path.join(ROOT, "deploy/prometheus/tests/*.yml")))
DASHBOARDS = sorted(glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json")))
DATASOURCES = os.path.join(ROOT, "deploy/grafana/provisioning/datasources/prometheus.yml")
RUNBOOK = os.path.join(ROOT, "docs/operations.md")

failures = []


def check(ok, what, detail=""):
    print(("PASS " if ok else "FAIL ") + what + (f": {detail}" if detail and not ok else ""))
    if not ok:
        failures.append(what)


def rules():
    """(kind, name, expr) of every rule."""
    out = []
    for path in RULES:
        for group in yaml.safe_load(open(path))["groups"]:
            for r in group["rules"]:
                kind = "alert" if "alert" in r else "record"
                out.append((kind, r[kind], r["expr"].strip(), r))
    return out


def panel_queries():
    """(dashboard, panel title, expr) with the dashboard variables substituted."""
    out = []
    for path in DASHBOARDS:
        d = json.load(open(path))
        for p in d["panels"]:
            for t in p.get("targets", []):
                expr = t["expr"].replace("$job", ".*").replace("$instance", ".*")
                out.append((os.path.basename(path), p["title"], expr))
        for v in d["templating"]["list"]:
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
            if m:
                sel = m.group(1).replace("$job", ".*").replace("$instance", ".*")
                out.append((os.path.basename(path), f"variable {v['name']}", sel))
    return out


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def static():
    ds_uid = yaml.safe_load(open(DATASOURCES))["datasources"][0]["uid"]
    uids = set()
    for path in DASHBOARDS:
        name = os.path.basename(path)
        try:
            d = json.load(open(path))
        except ValueError as e:
            check(False, f"{name} is JSON", str(e))
            continue
        problems = []
        for key in ("uid", "title", "panels", "templating", "schemaVersion", "time"):
            if key not in d:
                problems.append(f"no {key}")
        if d.get("uid") in uids:
            problems.append("duplicate uid")
        uids.add(d.get("uid"))
        names = [v["name"] for v in d.get("templating", {}).get("list", [])]
        for var in ("job", "instance"):
            if var not in names:
                problems.append(f"no ${var} variable")
        ids = set()
        for p in d.get("panels", []):
            gp = p.get("gridPos", {})
            if not all(k in gp for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
                problems.append(f"panel {p.get('title')!r}: bad gridPos")
            if p.get("id") in ids:
                problems.append(f"panel id {p.get('id')} twice")
            ids.add(p.get("id"))
            if p.get("datasource", {}).get("uid") != ds_uid:
                problems.append(f"panel {p.get('title')!r}: datasource is not {ds_uid}")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if not refs or len(set(refs)) != len(refs) or not all(t.get("expr") for t in p["targets"]):
                problems.append(f"panel {p.get('title')!r}: targets need an expr and distinct refIds")
        check(not problems, f"{name} is a valid dashboard", "; ".join(problems))

    alerts = [(name, r) for kind, name, _, r in rules() if kind == "alert"]
    tested = set()
    firing = set()
    for path in TESTS:
        for t in yaml.safe_load(open(path))["tests"]:
            for a in t.get("alert_rule_test", []):
                tested.add(a["alertname"])
                if a.get("exp_alerts"):
                    firing.add(a["alertname"])
    runbook = open(RUNBOOK).read()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.*)$", runbook, re.M)}
    for name, r in alerts:
        check(name in firing, f"alert {name} has a promtool test that fires it")
        ann = r.get("annotations", {})
        missing = [k for k in ("summary", "description", "runbook_url") if not ann.get(k)]
        check(not missing, f"alert {name} has summary, description, runbook_url", f"missing {missing}")
        url = ann.get("runbook_url", "")
        anchor = url.split("#", 1)[-1]
        check(url.startswith("docs/operations.md#") and anchor in anchors,
              f"alert {name} runbook section exists", url)
    for name in sorted(tested - {n for n, _ in alerts}):
        check(False, f"test for unknown alert {name}")


COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool)")


def with_bool(expr):
    """The expression with `bool` after every comparison outside braces and strings, so a
    healthy system (where the alert is silent) still returns the series it compares."""
    out, depth, i, quote = [], 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            depth += 1
            out.append(c)
        elif c == "}":
            depth -= 1
            out.append(c)
        elif depth == 0 and (m := COMPARISON.match(expr, i)):
            out.append(m.group(1) + " bool")
            i += len(m.group(1))
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


KEYWORDS = {
    "sum", "by", "without", "rate", "increase", "irate", "deriv", "changes", "resets", "max",
    "min", "avg", "count", "histogram_quantile", "and", "or", "unless", "on", "ignoring",
    "bool", "label_values", "vector", "group_left", "group_right", "offset", "le", "topk",
    "abs", "clamp_min", "time",
}


def metric_names(expr, recorded):
    """Metric names an expression reads (recording rules count as metrics)."""
    stripped = re.sub(r"\{[^}]*\}", "", re.sub(r"\[[^\]]*\]", "", expr))
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)
    names = set()
    for tok in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        if tok in KEYWORDS or tok in recorded:
            continue
        if tok.startswith(("pricehub_", "process_")) or tok == "up":
            names.add(tok)
    return names


def query(base, q):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return None, body.get("error", "query failed")
    return body["data"]["result"], None


def live(base):
    recorded = {name for kind, name, _, _ in rules() if kind == "record"}
    exprs = [(f"panel {d} / {t}", e) for d, t, e in panel_queries()]
    for kind, name, expr, _ in rules():
        if kind == "record":
            exprs.append((f"recording rule {name} (expr)", expr))
            exprs.append((f"recording rule {name} (stored series)", name))
        else:
            exprs.append((f"alert {name} (comparisons as bool)", with_bool(expr)))
    names = set()
    for _, e in exprs:
        names |= metric_names(e, recorded)
    for n in sorted(names):
        res, err = query(base, f'count({{__name__="{n}"}})')
        check(bool(res), f"metric {n} exists", err or "no series: no process exposes it")
    for what, e in exprs:
        res, err = query(base, e)
        check(err is None and bool(res), what, err or f"no series for {e}")


def wait_for_rules(base, timeout=60):
    """Waits until every recording rule has stored a series (rules run every interval)."""
    recorded = [name for kind, name, _, _ in rules() if kind == "record"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        missing = [n for n in recorded if not query(base, n)[0]]
        if not missing:
            return
        time.sleep(1)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "static":
        static()
    elif len(sys.argv) >= 3 and sys.argv[1] == "live":
        wait_for_rules(sys.argv[2])
        live(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "exprs":
        for _, _, e in panel_queries():
            print(" ".join(e.split()))
        for kind, _, e, _ in rules():
            print(" ".join((with_bool(e) if kind == "alert" else e).split()))
        return
    else:
        print(__doc__)
        sys.exit(2)
    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
