#!/bin/sh
# test_report.sh - `pare report` (build folder in $1) on real results of brown-4m: magnitude
# pruning at 30%, 50% and 2:4 with their perplexities (and the dense one), a bench of the dense
# and the 2:4 model, a short tune: the page is one self-contained file (no scripts, no external
# references) with a perplexity curve per method, per-block bars, speed bars and tables; in
# headless Chromium (when installed) the DOM's table cells hold the numbers of the JSON; bad
# input exits non-zero with one line and writes nothing.
B=${1:-build}
P="$B/pare"
D=${PARE_DATA:-../shared/data}
M="$D/bench/brown-4m/model.gguf"
TXT="$D/bench/brown-valid.txt"
[ -f "$M" ] || { echo "skip: $M not found"; exit 0; }
command -v python3 > /dev/null || { echo "skip: python3 not found"; exit 0; }
T=$(mktemp -d "${TMPDIR:-/tmp}/pare-report.XXXXXX") || exit 1
trap '[ -n "$KEEP" ] || rm -rf "$T"' EXIT INT TERM
fails=0
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
PPL="--text $TXT --ctx 64 --max-windows 8 --threads 1 --json -q"
"$P" ppl "$M" $PPL > "$T/dense.json" || fail "ppl dense"
for s in 0.3 0.5 2:4; do
    case $s in *:*) pat="--nm $s";; *) pat="--sparsity $s";; esac
    { "$P" prune "$M" -o "$T/mag-$s.gguf" --method magnitude $pat --json -q && "$P" ppl "$T/mag-$s.gguf" $PPL; } \
        > "$T/mag-$s.json" || fail "magnitude $s"
done
"$P" bench "$M" --prompt 16 --gen 4 --reps 1 --threads 1 --no-probe --json > "$T/bench-dense.json" 2> /dev/null || fail "bench dense"
"$P" bench "$T/mag-2:4.gguf" --prompt 16 --gen 4 --reps 1 --threads 1 --no-probe --json > "$T/bench-24.json" 2> /dev/null || fail "bench 2:4"
"$P" tune "$T/mag-0.5.gguf" -o "$T/tuned.gguf" --data "$TXT" --window 2 --steps 4 --batch 1 --seq 32 --threads 1 --json -q \
    > "$T/tune.json" || fail "tune"
"$P" report "$T"/*.json -o "$T/report.html" --title "brown-4m test" > "$T/out" 2> "$T/err" || fail "report: $(cat "$T/err")"
grep -q "2 perplexity curves, 2 benches" "$T/out" || fail "report summary: $(cat "$T/out")"
python3 - "$T/report.html" <<'PY' || fail "report structure"
import sys, html.parser
src = open(sys.argv[1]).read()
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.tags = {}; s.bad = []
    def handle_starttag(s, tag, a):
        s.tags[tag] = s.tags.get(tag, 0) + 1
        for k, v in a:
            if k in ("src", "href") or (v and "http" in v and k != "xmlns"): s.bad.append((tag, k, v))
p = P(); p.feed(src)
assert "script" not in p.tags and not p.bad, (p.tags, p.bad)
assert p.tags.get("svg", 0) >= 5 and p.tags.get("polyline", 0) == 2 and p.tags.get("table", 0) >= 4, p.tags
assert "magnitude" in src and "perplexity by method" in src and "decode (tokens/s)" in src
PY
CH=$(command -v chromium || command -v chromium-browser)
if [ -n "$CH" ]; then
    timeout 120 "$CH" --headless --no-sandbox --disable-gpu --dump-dom "file://$T/report.html" > "$T/dom.html" 2> "$T/cerr" ||
        fail "chromium: $(tail -3 "$T/cerr")"
    python3 - "$T/dom.html" "$T" <<'PY' || fail "DOM numbers against the JSON"
import sys, json, re, html.parser, os
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.rows = []; s.cur = None; s.key = None
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "tr" and "data-src" in a: s.cur = {"src": a["data-src"]}; s.rows.append(s.cur)
        if tag == "td" and s.cur is not None and "data-k" in a: s.key = a["data-k"]; s.cur[s.key] = ""
    def handle_data(s, d):
        if s.key: s.cur[s.key] += d
    def handle_endtag(s, tag):
        if tag == "td": s.key = None
p = P(); p.feed(open(sys.argv[1]).read())
recs = {}
for f in os.listdir(sys.argv[2]):
    if not f.endswith(".json"): continue
    objs = [json.loads(l) for l in open(os.path.join(sys.argv[2], f)) if l.strip()]
    objs = [o for o in objs if not ("step" in o and "done" not in o)]
    for i, o in enumerate(objs): recs["%s#%d" % (f, i)] = o
checked = 0
for r in p.rows:
    o = recs[r["src"]]
    for k, v in r.items():
        if k == "src" or not isinstance(o.get(k), (int, float)) or isinstance(o.get(k), bool): continue
        assert abs(float(v) - o[k]) <= 1e-9 * max(1, abs(o[k])), (r["src"], k, v, o[k])
        checked += 1
assert checked >= 20 and len(p.rows) >= 8, (checked, len(p.rows))
print("  DOM: %d numbers in %d rows equal the JSON" % (checked, len(p.rows)))
PY
else
    echo "skip: chromium not installed (the DOM check)"
fi
"$P" report "$T/nothing.json" -o "$T/x.html" > /dev/null 2> "$T/err" && fail "missing input accepted"
printf '{"a": 1}\nnot json\n' > "$T/bad.json"
"$P" report "$T/bad.json" -o "$T/x.html" > /dev/null 2> "$T/err" && fail "bad JSON accepted"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "bad.json" "$T/err" || fail "bad JSON: message '$(cat "$T/err")'"
[ -e "$T/x.html" ] && fail "an output after an error"
"$P" report "$T/dense.json" -o "$T/dense.json" > /dev/null 2>&1 && fail "-o = input accepted"
if [ $fails = 0 ]; then echo "ok: pare report"; exit 0; fi
exit 1
