#!/usr/bin/env bash
# The quality bar of issue 15 in one run: dense vs MoA vs StreamingLLM vs H2O vs the binary
# (DuoAttention-shaped) plan at 25% and 50% KV density, on planted-retrieval.gguf (LongEval line
# retrieval with its answer cue, generated at 1K..16K tokens) and on stories260K (perplexity with
# llama-perplexity's windowing, chunks and --stride). The MoA and binary plans come from the real
# pipeline (moa calibrate -> moa profile -> moa optimize [--shape binary]); the script then runs
# `moa eval retrieval` and `moa eval ppl` for every method and density, `moa report`, and prints
# one Markdown table (the one in README.md). Every step resumes: calibrate, profile and the
# retrieval runs continue after a kill, plans and finished results are reused. Run from the
# repository root after a Release build. Settings (environment): MOA, SHARED (models), OUT,
# PLANS (a folder of plans to reuse or write), THREADS, N_SHORT / N_LONG (cases per length at
# SHORT_LENGTHS / LONG_LENGTHS), N_CALIB (planted calibration samples per length, 4), PPL_CTX,
# PPL_STRIDE, PART (all, plans-planted, plans-stories, eval, eval-baselines, eval-plans, ppl or
# table); `--print` lists the commands without running.
set -euo pipefail

MOA="${MOA:-build/moa}"
SHARED="${SHARED:-../shared}"
OUT="${OUT:-build/quality-eval}"
PLANS="${PLANS:-$OUT/plans}"
THREADS="${THREADS:-2}"
N_SHORT="${N_SHORT:-4}"
N_LONG="${N_LONG:-2}"
N_CALIB="${N_CALIB:-4}"
SHORT_LENGTHS="${SHORT_LENGTHS:-1024,2048,4096}"
LONG_LENGTHS="${LONG_LENGTHS:-8192,16384}"
LENGTHS="$SHORT_LENGTHS,$LONG_LENGTHS"
PPL_CTX="${PPL_CTX:-256}"
PPL_STRIDE="${PPL_STRIDE:-128}"
PART="${PART:-all}"
DENSITIES=(0.25 0.5)
PLANTED="$SHARED/models/planted-retrieval.gguf"
STORIES="$SHARED/models/stories260K.gguf"
PRINT_ONLY=0
[[ "${1:-}" == "--print" ]] && PRINT_ONLY=1

# run COMMAND...: prints the command (the README quotes these lines), then runs it.
run() {
  echo "\$ $*"
  [[ $PRINT_ONLY == 1 ]] && return 0
  "$@"
}
# plan FILE COMMAND...: runs an optimize command unless FILE is already there (reused).
plan() {
  local file="$1"
  shift
  if [[ -f "$file" && $PRINT_ONLY == 0 ]]; then
    echo "# reusing $file"
    return 0
  fi
  run "$@"
}
part() { [[ $PART == all || $PART == "$1" || ($PART == eval && $1 == eval-*) ]]; }

[[ $PRINT_ONLY == 1 ]] || mkdir -p "$OUT" "$PLANS" "$OUT/stories-calib"

# --- Plans for planted-retrieval.gguf: profiled at 1K and 2K, budgets held up to 16K. ---
if part plans-planted; then
  run "$MOA" calibrate -m "$PLANTED" -t "$THREADS" --lengths 1024,2048 -n "$N_CALIB" \
    --tasks lines,passkey --seed 1 -o "$PLANS/planted-calib.json"
  run "$MOA" profile -m "$PLANTED" -t "$THREADS" --calib "$PLANS/planted-calib.json" --sinks 4 \
    -o "$PLANS/planted.profile"
  for d in "${DENSITIES[@]}"; do
    plan "$PLANS/planted-moa-$d.json" "$MOA" optimize --profile "$PLANS/planted.profile" \
      -m "$PLANTED" -t "$THREADS" --density "$d" --lengths "$LENGTHS" --points 4 \
      --time-limit 20 -o "$PLANS/planted-moa-$d.json"
    # The same with a finer alpha grid (64 instead of 2048 / 8): fixed windows of 64..192
    # become candidates (see README: why the default plan misses the first needles).
    plan "$PLANS/planted-moa-a64-$d.json" "$MOA" optimize --profile "$PLANS/planted.profile" \
      -m "$PLANTED" -t "$THREADS" --density "$d" --lengths "$LENGTHS" --points 4 \
      --time-limit 20 --alpha-step 64 -o "$PLANS/planted-moa-a64-$d.json"
    plan "$PLANS/planted-binary-$d.json" "$MOA" optimize --profile "$PLANS/planted.profile" \
      -m "$PLANTED" -t "$THREADS" --shape binary --density "$d" --lengths "$LENGTHS" --alpha-step 128 \
      -o "$PLANS/planted-binary-$d.json"
  done
fi

# --- Plans for stories260K: calibrated on the model's own sampled stories (not the eval text),
# profiled at PPL_CTX / 2 and PPL_CTX, budgets at PPL_CTX (the perplexity window). ---
if part plans-stories; then
  if [[ $PRINT_ONLY == 0 ]]; then
    i=0
    for prompt in "One day" "Tom and Sue" "The little dog" "There was a big tree"; do
      i=$((i + 1))
      [[ -s "$OUT/stories-calib/$i.txt" ]] && continue
      "$MOA" generate -m "$STORIES" -t 1 -p "$prompt" -n 600 --temp 0.8 --seed "$i" \
        >"$OUT/stories-calib/$i.txt" 2>/dev/null
    done
  fi
  run "$MOA" calibrate -m "$STORIES" -t "$THREADS" --lengths "$((PPL_CTX / 2)),$PPL_CTX" -n 4 \
    --source "$OUT/stories-calib" --max-answer 16 --no-newline-stop --seed 1 \
    -o "$PLANS/stories-calib.json"
  run "$MOA" profile -m "$STORIES" -t "$THREADS" --calib "$PLANS/stories-calib.json" --sinks 4 \
    -o "$PLANS/stories.profile"
  for d in "${DENSITIES[@]}"; do
    plan "$PLANS/stories-moa-$d.json" "$MOA" optimize --profile "$PLANS/stories.profile" \
      -m "$STORIES" -t "$THREADS" --density "$d" --lengths "$PPL_CTX" --points 2 \
      --time-limit 3 -o "$PLANS/stories-moa-$d.json"
    plan "$PLANS/stories-binary-$d.json" "$MOA" optimize --profile "$PLANS/stories.profile" \
      -m "$STORIES" -t "$THREADS" --shape binary --density "$d" --lengths "$PPL_CTX" \
      -o "$PLANS/stories-binary-$d.json"
  done
fi

# --- Retrieval on the planted model (generated LongEval lines, answer cue in the prompt): the
# short lengths with N_SHORT cases each, the long ones with N_LONG; the baselines (which need no
# plan) and the plans run as parallel jobs, one results file each. ---
# retrieval GROUP NAME DENSITY METHODS: one `moa eval retrieval` job in the background.
retrieval() {
  local lengths="$SHORT_LENGTHS" n="$N_SHORT"
  [[ $1 == long ]] && lengths="$LONG_LENGTHS" n="$N_LONG"
  run "$MOA" eval retrieval -m "$PLANTED" -t 1 --lengths "$lengths" -n "$n" --density "$3" \
    --sinks 4 --methods "$4" -o "$OUT/retrieval-$2-$1.json" &
  jobs+=($!)
}
for group in short long; do
  jobs=()
  if part eval-baselines; then
    retrieval "$group" dense 1 dense
    for d in "${DENSITIES[@]}"; do retrieval "$group" "$d" "$d" streaming,h2o; done
  fi
  if part eval-plans; then
    for d in "${DENSITIES[@]}"; do
      retrieval "$group" "$d-plans" "$d" \
        "moa:$PLANS/planted-moa-$d.json,binary:$PLANS/planted-binary-$d.json"
    done
  fi
  for job in "${jobs[@]}"; do wait "$job"; done
done

# --- Perplexity on stories260K: llama.cpp's four reference greedy texts, three times. ---
if part ppl; then
  if [[ $PRINT_ONLY == 0 ]]; then
    python3 - "$SHARED/models/reference/stories260K.greedy.jsonl" >"$OUT/stories.txt" <<'PY'
import json, sys
texts = [json.loads(l) for l in open(sys.argv[1])]
one = "\n".join((t["prompt"] + t["greedy_text"]).strip() for t in texts)
print("\n".join([one] * 3))
PY
  fi
  for d in "${DENSITIES[@]}"; do
    methods="streaming,h2o,moa:$PLANS/stories-moa-$d.json,binary:$PLANS/stories-binary-$d.json"
    [[ $d == "${DENSITIES[0]}" ]] && methods="dense,$methods"
    run "$MOA" eval ppl -m "$STORIES" -t 1 -f "$OUT/stories.txt" -c "$PPL_CTX" \
      --methods "$methods" --density "$d" --sinks 4 -o "$OUT/ppl-$d.json"
    run "$MOA" eval ppl -m "$STORIES" -t 1 -f "$OUT/stories.txt" -c "$PPL_CTX" \
      --stride "$PPL_STRIDE" --methods "$methods" --density "$d" --sinks 4 \
      -o "$OUT/ppl-stride-$d.json"
  done
fi

part table || exit 0
run "$MOA" report "$OUT"/retrieval-*.json "$OUT"/ppl-*.json -o "$OUT/report"
[[ $PRINT_ONLY == 1 ]] && exit 0

# --- One table: a row per method and density, retrieval merged over the short and long runs. ---
python3 - "$OUT" "$LONG_LENGTHS" <<'EOF'
import glob, json, sys
out, long_lengths = sys.argv[1], sys.argv[2]
n_max = int(long_lengths.split(",")[-1])
load = lambda p: json.load(open(p))

def kv_density(plan, n):  # docs/plans.md: mean over KV heads of min(N, G + S(N)) / N
    spans = [min(n, plan.get("sinks", 0) + max(1, min(n, int(r["alpha"] + r["beta"] * n))))
             for layer in plan["rules"] for r in layer]
    return sum(spans) / (len(spans) * n)

rows = {}  # (kind, budget) -> by_length {L: (correct, count)} and the plan file
for path in sorted(glob.glob(f"{out}/retrieval-*-*.json")):
    budget = path.split("retrieval-")[1].split("-")[0]
    for s in load(path)["summary"]:
        kind = s["method"].split(":")[0]
        if "-a64-" in s["method"]: kind = "moa, α step 64"
        row = rows.setdefault((kind, "1" if kind == "dense" else budget), {"by_length": {}})
        for b in s["by_length"]:
            row["by_length"][b["length"]] = (b["correct"], b["count"])
        if ":" in s["method"]:
            row["plan"] = load(s["method"].split(":", 1)[1])
ppl = {}
for path in sorted(glob.glob(f"{out}/ppl-*.json")):
    key = "stride" if "stride" in path else "chunks"
    budget = path.rsplit("-", 1)[1][:-len(".json")]
    for m in load(path)["results"]:
        kind = m["method"].split(":")[0]
        ppl[(kind, "1" if kind == "dense" else budget, key)] = m["ppl"]
lengths = sorted({l for row in rows.values() for l in row["by_length"]})
threshold = 0.9
print("| method | KV budget | " + " | ".join(f"{l // 1024}K" for l in lengths) +
      f" | effective length | effective / mean span | KV density at {n_max // 1024}K"
      " | PPL stories260K (chunks) | PPL stories260K (stride) |")
print("|---|---|" + "---|" * len(lengths) + "---|---|---|---|---|")
order = ["dense", "streaming", "h2o", "binary", "moa", "moa, α step 64"]
for (kind, budget), row in sorted(rows.items(),
                                  key=lambda kv: (kv[0][1] != "1", kv[0][1], order.index(kv[0][0]))):
    by = row["by_length"]
    cells = [f"{by[l][0] / by[l][1]:.2f} ({by[l][0]}/{by[l][1]})" if l in by else "–"
             for l in lengths]
    # Over the merged lengths: the longest with accuracy >= threshold (docs/eval.md).
    eff = max([l for l in lengths if l in by and by[l][0] >= threshold * by[l][1]], default=0)
    def density_at(n):
        if kind == "dense": return 1.0
        return kv_density(row["plan"], n) if "plan" in row else float(budget)
    ratio = f"{1 / density_at(eff):.2f}" if eff else "–"
    pc, ps = ppl.get((kind, budget, "chunks")), ppl.get((kind, budget, "stride"))
    print(f"| {kind} | {budget} | " + " | ".join(cells) +
          f" | {eff or 'none'} | {ratio} | {density_at(n_max):.3f} | " +
          (f"{pc:.4f}" if pc else "–") + " | " + (f"{ps:.4f}" if ps else "–") + " |")
EOF
