#!/usr/bin/env python3
"""pareto_plot.py CSV OUT.svg - the size/perplexity plot of bench/luc_table.sh's CSV as a
self-contained SVG: one colour per policy (uniform, luc, luc-size, budget, budget-loss), x = sparse-aware size in
MB, y = brown-test perplexity; the uniform points are joined along their lower envelope."""
import csv, sys

rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["policy"] != "dense" and r["sparse_mb"]]
pts = {}
for r in rows:
    pts.setdefault(r["policy"], []).append((float(r["sparse_mb"]), float(r["ppl"]), "%s/%s" % (r["target"], r["bits"])))
W, H, L, R, T, B = 720, 440, 70, 150, 30, 50
xs = [p[0] for v in pts.values() for p in v]; ys = [p[1] for v in pts.values() for p in v]
x0, x1 = min(xs) - 0.05, max(xs) + 0.05
y0, y1 = min(ys) - 0.5, max(ys) + 0.5
X = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
Y = lambda y: H - B - (y - y0) / (y1 - y0) * (H - T - B)
col = {"uniform": "#1f77b4", "luc": "#d62728", "luc-size": "#ff7f0e", "budget": "#2ca02c", "budget-loss": "#9467bd", "budget-verify": "#000000"}
o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
     '<rect width="100%" height="100%" fill="white"/>',
     '<text x="%d" y="18" font-size="14">brown-4m: perplexity against model size (uniform, LUC, budget searches)</text>' % L]
for i in range(6):
    xv = x0 + (x1 - x0) * i / 5; yv = y0 + (y1 - y0) * i / 5
    o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (X(xv), T, X(xv), H - B))
    o.append('<text x="%.1f" y="%d" text-anchor="middle">%.2f</text>' % (X(xv), H - B + 16, xv))
    o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, Y(yv), W - R, Y(yv)))
    o.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (L - 6, Y(yv) + 4, yv))
o.append('<text x="%d" y="%d" text-anchor="middle">size (MB, sparse-aware)</text>' % ((L + W - R) // 2, H - 12))
o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">brown-test perplexity</text>' % ((T + H - B) // 2, (T + H - B) // 2))
env, best = [], 1e9
for p in sorted(pts.get("uniform", [])):
    if p[1] < best: best = p[1]; env.append(p)
if env:
    o.append('<polyline fill="none" stroke="%s" stroke-dasharray="4 3" points="%s"/>' % (col["uniform"], " ".join("%.1f,%.1f" % (X(p[0]), Y(p[1])) for p in env)))
for k, (name, v) in enumerate(sorted(pts.items())):
    c = col.get(name, "#555")
    for p in v:
        o.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s %s: %.3f MB, ppl %.2f</title></circle>' % (X(p[0]), Y(p[1]), c, name, p[2], p[0], p[1]))
    o.append('<circle cx="%d" cy="%d" r="5" fill="%s"/><text x="%d" y="%d">%s</text>' % (W - R + 20, T + 20 + 20 * k, c, W - R + 30, T + 24 + 20 * k, name))
o.append('</svg>')
open(sys.argv[2], "w").write("\n".join(o) + "\n")
