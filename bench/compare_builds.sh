#!/usr/bin/env bash
# Same-run comparison of two Release builds (this machine's speed drifts from minute to minute, so
# only ratios taken in one run mean anything): prefill (pp512, Q8_0 / Q4_K / F16 weights), decode
# at depth 16384 (F16 and Q8_0 KV) and the decode/prefill attention kernels (decode: GQA groups
# of 8 and 4, and multi-head), each command run with the old build and then the new one, the
# whole sequence twice. Usage:
#   OLD=/path/to/old/build NEW=build bench/compare_builds.sh
# PARTS=decode skips the prefill runs (PARTS="prefill decode" by default); PARTS=matvec adds
# decode at depth 0 (tg32, Q8_0 / Q4_K / F16 weights) and the matvec kernels from memory.
# Both builds need `moa`, `bench/attention_bench` and `bench/kernels_bench`. Outputs go to $OUT.
# OPENBLAS_CORETYPE is unset so that moa picks OpenBLAS's best kernels for the sgemm peak it
# divides prefill by (an environment that sets it, e.g. to Haswell on an AVX-512 CPU, halves it).
set -euo pipefail
OLD="${OLD:?set OLD to the old build directory}"
NEW="${NEW:-build}"
OUT="${OUT:-build/compare}"
THREADS="${THREADS:-2}"
PARTS="${PARTS:-prefill decode}"
unset OPENBLAS_CORETYPE
export OMP_NUM_THREADS="$THREADS"
mkdir -p "$OUT"

run() {
  local name="$1"
  shift
  echo "\$ $*" | tee "$OUT/$name.txt"
  "$@" 2>&1 | tee -a "$OUT/$name.txt" | grep -E "^\| [a-z]|^BM_" || true
}

# Runs a command with the old build, then the new one: @DIR@ in its arguments is the build.
both() {
  local name="$1"
  shift
  for side in old new; do
    local dir=$OLD
    [[ $side == new ]] && dir=$NEW
    run "$name-$side-$pass" "${@//@DIR@/$dir}"
  done
}

for pass in 1 2; do
  if [[ $PARTS == *matvec* ]]; then
    for type in q8_0 q4_k f16; do
      both "tg32-$type" @DIR@/moa bench --random llama-1b --random-type "$type" -p 0 -n 32 -r 3 \
        --ctx 0 -t "$THREADS"
    done
    both matvec @DIR@/bench/kernels_bench --benchmark_filter='BM_Matvec/|BM_MemoryBandwidth'
  fi
  if [[ $PARTS == *prefill* ]]; then
    for type in q8_0 q4_k f16; do
      both "pp512-$type" @DIR@/moa bench --random llama-1b --random-type "$type" -p 512 -n 0 -r 3 \
        --ctx 0 -t "$THREADS"
    done
  fi
  if [[ $PARTS == *decode* ]]; then
    both tg16k @DIR@/moa bench --random llama-1b --random-type q8_0 -p 0 -n 16 -r 2 --ctx 16384 \
      --kv-type f16,q8_0 -t "$THREADS"
    both decode-attn @DIR@/bench/attention_bench \
      --benchmark_filter='DecodeAllLayers/(4096|16384)|DecodeMultiHead/4096|AttentionAt16K/(100|25)/1/'
  fi
  if [[ $PARTS == *prefill* ]]; then
    both prefill-attn @DIR@/bench/kernels_bench --benchmark_filter='BM_Attention/2048/'
  fi
done
