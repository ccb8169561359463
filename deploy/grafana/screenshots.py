#!/usr/bin/env python3
"""Renders each Grafana dashboard's panels to a PNG from the same Prometheus queries
(Grafana itself does not run here): one image per dashboard, one subplot per panel,
laid out as in the dashboard grid order.

  screenshots.py PROMETHEUS_URL OUT_DIR [MINUTES]

Variables are set to "All". Images are named dashboard-<file>.png.
"""

import glob
import json
import os
import sys
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def query_range(base, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{q}", timeout=20) as r:
        return json.load(r)["data"]["result"]


def legend(fmt, labels):
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def render(base, path, out_dir, minutes):
    d = json.load(open(path))
    panels = sorted(d["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 3.2 * rows), squeeze=False)
    end = time.time()
    start = end - minutes * 60
    step = max(1, int(minutes * 60 / 200))
    for ax, p in zip(axes.flat, panels):
        ax.set_title(p["title"], fontsize=9)
        for t in p["targets"]:
            expr = t["expr"].replace("$job", ".*").replace("$instance", ".*")
            for s in query_range(base, expr, start, end, step):
                xs = [(float(v[0]) - end) / 60 for v in s["values"]]
                ys = [float(v[1]) for v in s["values"]]
                ax.plot(xs, ys, label=legend(t.get("legendFormat", ""), s["metric"])[:40])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("minutes", fontsize=7)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(d["title"] + " (rendered from Prometheus by deploy/grafana/screenshots.py)", fontsize=11)
    fig.tight_layout()
    name = "dashboard-" + os.path.basename(path).replace(".json", ".png")
    fig.savefig(os.path.join(out_dir, name), dpi=72)
    plt.close(fig)
    print(f"PASS rendered {name} ({len(panels)} panels)")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    base, out_dir = sys.argv[1], sys.argv[2]
    minutes = float(sys.argv[3]) if len(sys.argv) > 3 else 2
    os.makedirs(out_dir, exist_ok=True)
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json"))):
        render(base, path, out_dir, minutes)


if __name__ == "__main__":
    main()
