#!/usr/bin/env bash
# Regenerates every performance table of README.md in one run: the exact `moa bench` and
# `build/bench/attention_bench` invocations the tables come from (same shapes, N, repeats and
# threads). Run it from the repository root on a quiet machine after a Release build
# (`cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j`); each command's
# output is shown and saved under $OUT. THREADS sets -t and OMP_NUM_THREADS (the README's tables
# used the 2 cores of their VM); `--print` lists the commands without running them.
set -euo pipefail

THREADS="${THREADS:-2}"
OUT="${OUT:-build/bench-results}"
MOA="${MOA:-build/moa}"
ATTENTION_BENCH="${ATTENTION_BENCH:-build/bench/attention_bench}"
PRINT_ONLY=0
[[ "${1:-}" == "--print" ]] && PRINT_ONLY=1

export OMP_NUM_THREADS="$THREADS"
[[ $PRINT_ONLY == 1 ]] || mkdir -p "$OUT"

# run NAME COMMAND...: prints the command, then runs it with its output also in $OUT/NAME.txt.
run() {
  local name="$1"
  shift
  echo "\$ $*"
  [[ $PRINT_ONLY == 1 ]] && return 0
  "$@" 2>&1 | tee "$OUT/$name.txt"
}

L1B=(--random llama-1b -t "$THREADS")

# "Performance": dense decode/prefill per weight type and depth.
run dense-f16 "$MOA" bench "${L1B[@]}" --random-type f16 -p 512 -n 128 -r 5 --ctx 0,1024,4096
run dense-q8_0 "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 512 -n 128 -r 5 --ctx 0,1024,4096
run dense-f16-16k "$MOA" bench "${L1B[@]}" --random-type f16 -p 0 -n 64 -r 3 --ctx 16384
run dense-q8_0-16k "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 0 -n 64 -r 3 --ctx 16384
run dense-q4_k "$MOA" bench "${L1B[@]}" --random-type q4_k -p 512 -n 128 -r 5 --ctx 0
# The AMX sentences under that table: F16 and BF16 pp512 on AMX tiles, then without (MOA_NO_AMX=1),
# alternating, twice.
for pass in 1 2; do
  for type in bf16 f16; do
    run "$type-amx-$pass" "$MOA" bench "${L1B[@]}" --random-type "$type" -p 512 -n 4 -r 3 --ctx 0
    run "$type-no-amx-$pass" env MOA_NO_AMX=1 "$MOA" bench "${L1B[@]}" --random-type "$type" \
      -p 512 -n 4 -r 3 --ctx 0
  done
done
# The batch-decode sentence under that table (Q8_0, depth 512, batch 1 and 4).
run batch-q8_0 "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 0 -n 32 -r 5 --ctx 512 -b 1,4

# "Sparse attention": the attention kernels (BM_AttentionAt16K, BM_Prefill16K; and
# BM_DecodeAllLayers, quoted in the decode-attention paragraph).
run attention-bench "$ATTENTION_BENCH" --benchmark_out="$OUT/attention-bench.json" \
  --benchmark_out_format=json
# The whole-model table: three methods at the same per-head budget.
run sparse-2k-16k "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 256 -n 16 -r 2 \
  --ctx 2048,16384 -b 1,4 --method dense,streaming,h2o --density 0.5
run sparse-32k "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 0 -n 16 -r 2 --ctx 32768 \
  --method dense,streaming,h2o --density 0.25
# Sparse + quantized KV (issue 16): dense and a 25% plan, each with F16 and Q8_0 K/V, one run.
run kv-q8_0-16k "$MOA" bench "${L1B[@]}" --random-type q8_0 -p 0 -n 32 -r 3 --ctx 16384 \
  --method dense,streaming --density 0.25 --kv-type f16,q8_0
# docs/threads.md: slowdown with one core loaded by a spinning process (loaded/quiet per row).
STORIES="${STORIES:-../shared/models/stories260K.gguf}"
run busy-stories "$MOA" bench -m "$STORIES" -p 128 -n 64 -r 3 --ctx 50,1920 -t "$THREADS" \
  --busy-neighbour
run busy-small-q8_0 "$MOA" bench --random small --random-type q8_0 -p 64 -n 16 -r 3 --ctx 512 \
  -t "$THREADS" --busy-neighbour

# "Quality" (plan quality, not speed): MoA vs StreamingLLM vs full-or-window plans on held-back
# answers; and the optimizer's CBC solve times quoted in docs/optimizer.md.
if [[ "${QUALITY:-0}" == 1 ]]; then
  run quality-bar env MOA="$MOA" OUT="$OUT/quality" scripts/quality_bar.sh
fi
run milp-bench build/bench/milp_bench

# "Profiling cost" (docs/profile.md): one sample's profile vs the dense forward at 1K/2K/4K and
# the profiling pass's peak RSS up to 8K, llama-1b's layer shape (4 of its 22 layers: the ratio
# is per layer, the embedding and head are the same in both). moa itself selects OpenBLAS's
# SkylakeX kernels on AVX-512 CPUs (src/cli/runtime_env.cc).
# Best of 3 up to 4K (the VM drifts by ~15% between runs), one run at 8K; then the same 2K row
# recomputing every layer and with exact W^T dy, one setting at a time.
run profile-cost "$MOA" profile bench "${L1B[@]}" --random-type q8_0 --layers 4 \
  --lengths 1024,2048,4096 -r 3
run profile-cost-8k "$MOA" profile bench "${L1B[@]}" --random-type q8_0 --layers 4 \
  --lengths 8192 -r 1
run profile-cost-recompute "$MOA" profile bench "${L1B[@]}" --random-type q8_0 --layers 4 \
  --lengths 2048 -r 2 --memory-budget 0
run profile-cost-exact "$MOA" profile bench "${L1B[@]}" --random-type q8_0 --layers 4 \
  --lengths 2048 -r 2 --exact-backward

# "Quality" (accuracy and perplexity, not speed; most of an hour on 2 cores): the quality table
# of dense, StreamingLLM, H2O, MoA and binary plans from the real pipeline. Opt in: QUALITY=1.
if [[ "${QUALITY:-0}" == 1 ]]; then
  run quality env MOA="$MOA" OUT="$OUT/quality-table" scripts/quality_table.sh
fi
