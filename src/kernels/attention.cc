// Causal flash attention over key runs with per-KV-head band masks (sinks + local span).
// Keys come as runs: consecutive positions of one KV head (a dense cache gives one run per
// head; a ring cache gives sink slots plus up to two ring pieces). Work is planned as query
// blocks (one KV head x up to kQueryTile positions, all query heads of the group together so
// each K/V tile is converted once) times the key tiles their mask leaves visible in every run
// of that head; hidden tiles are never touched, so cost scales with mask density. When there
// are few blocks (decode) or their costs differ (heads with different spans), a block's key
// tiles are split across tasks (split-K) and the partial softmax states are merged afterwards.
// Results go either straight to a normalised output (attention) or into an AttentionState
// that later calls extend (attention_accumulate).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention_tile.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

constexpr int64_t kMinTilesPerTask = 4;  // below this a split costs more in merging than it saves
constexpr int64_t kTasksPerThread = 4;   // slack for dynamic load balancing
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Block {
  QueryBlock query;
  size_t first_part = 0;  // its RunTiles in Plan::parts
  size_t n_parts = 0;
  int64_t n_tiles = 0;
  int64_t n_splits = 1;
  int64_t first_slot = 0;  // index of its first partial result when split
};

struct Task {
  int64_t block = 0;
  int64_t t_begin = 0;
  int64_t t_end = 0;
  int64_t slot = -1;  // partial-result slot, or -1: finish the block's rows directly
};

struct Plan {
  std::vector<Block> blocks;
  std::vector<RunTiles> parts;
  std::vector<Task> tasks;
  int64_t n_slots = 0;
};

// Where the results go: a normalised output, or an accumulating state.
struct Target {
  float* out = nullptr;
  AttentionState* state = nullptr;
};

void validate(const AttentionShape& shape, std::span<const KeyRun> runs,
              std::span<const BandMask> masks) {
  if (shape.n_head <= 0 || shape.n_head_kv <= 0 || shape.n_head % shape.n_head_kv != 0) {
    fail("attention: n_head {} / n_head_kv {}: expected a positive multiple", shape.n_head,
         shape.n_head_kv);
  }
  if (shape.head_dim <= 0) fail("attention: head_dim {}: expected > 0", shape.head_dim);
  if (!masks.empty() && static_cast<int64_t>(masks.size()) != shape.n_head_kv) {
    fail("attention: masks: {} given, expected 0 or n_head_kv = {}", masks.size(), shape.n_head_kv);
  }
  for (const KeyRun& run : runs) {
    if (run.kv_head < 0 || run.kv_head >= shape.n_head_kv) {
      fail("attention: key run kv_head {}: expected 0 .. {}", run.kv_head, shape.n_head_kv - 1);
    }
    if (run.n_keys < 0 || run.key_pos0 < 0) {
      fail("attention: key run of {} keys from position {}: expected non-negative values",
           run.n_keys, run.key_pos0);
    }
    if (run.n_keys > 0 && (run.k == nullptr || run.v == nullptr)) {
      fail("attention: key run of KV head {}: keys or values missing", run.kv_head);
    }
  }
}

BandMask mask_of(std::span<const BandMask> masks, int64_t kv_head) {
  return masks.empty() ? BandMask{} : masks[static_cast<size_t>(kv_head)];
}

void plan_blocks(const AttentionShape& shape, int64_t n_query, int64_t q_pos0,
                 std::span<const KeyRun> runs, std::span<const BandMask> masks, Plan* plan) {
  for (int64_t g = 0; g < shape.n_head_kv; ++g) {
    const BandMask mask = mask_of(masks, g);
    for (int64_t q0 = 0; q0 < n_query; q0 += kQueryTile) {
      Block block;
      block.query = {g, q0, std::min(n_query, q0 + kQueryTile)};
      block.first_part = plan->parts.size();
      for (size_t r = 0; r < runs.size(); ++r) {
        if (runs[r].kv_head != g) continue;
        const KeyTiles tiles = visible_key_tiles(q_pos0 + q0, q_pos0 + block.query.q_end - 1,
                                                 runs[r].key_pos0, runs[r].n_keys, mask);
        if (tiles.count() == 0) continue;
        plan->parts.push_back({static_cast<int64_t>(r), tiles});
        block.n_tiles += tiles.count();
      }
      block.n_parts = plan->parts.size() - block.first_part;
      plan->blocks.push_back(block);
    }
  }
}

// Multiply-adds of Q.K and P.V over every visible key tile, the measure of whether a thread
// team pays (kernels/parallel.h).
int64_t visible_macs(const AttentionShape& shape, const Plan& plan) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  int64_t macs = 0;
  for (const Block& b : plan.blocks) {
    macs += 2 * b.n_tiles * kKeyTile * (b.query.q_end - b.query.q_begin) * group * shape.head_dim;
  }
  return macs;
}

// Splits blocks with many key tiles so that every thread gets several similar-sized tasks.
void plan_tasks(int n_threads, Plan* plan) {
  int64_t total_tiles = 0;
  for (const Block& b : plan->blocks) total_tiles += b.n_tiles;
  const int64_t target = std::max(kMinTilesPerTask, total_tiles / (kTasksPerThread * n_threads));
  for (size_t i = 0; i < plan->blocks.size(); ++i) {
    Block& b = plan->blocks[i];
    const int64_t count = b.n_tiles;
    b.n_splits = n_threads > 1 ? std::max<int64_t>(1, count / target) : 1;
    if (b.n_splits == 1) {
      plan->tasks.push_back({static_cast<int64_t>(i), 0, count, -1});
      continue;
    }
    b.first_slot = plan->n_slots;
    for (int64_t s = 0; s < b.n_splits; ++s) {
      plan->tasks.push_back({static_cast<int64_t>(i), s * count / b.n_splits,
                             (s + 1) * count / b.n_splits, plan->n_slots + s});
    }
    plan->n_slots += b.n_splits;
  }
}

// Index (query * n_head + head) of row r of a block (query-major, then head within group).
int64_t row_index(const AttentionShape& shape, const QueryBlock& q, int64_t r) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  return (q.q_begin + r / group) * shape.n_head + q.kv_head * group + r % group;
}

int64_t block_rows(const AttentionShape& shape, const QueryBlock& q) {
  return (q.q_end - q.q_begin) * (shape.n_head / shape.n_head_kv);
}

void write_normalised(const AttentionShape& shape, const QueryBlock& q, const PartialResult& acc,
                      int64_t stride, float* out) {
  for (int64_t r = 0; r < block_rows(shape, q); ++r) {
    const float l = acc.l[static_cast<size_t>(r)];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: output zeros
    float* dst = out + row_index(shape, q, r) * shape.head_dim;
    const float* src = acc.o.data() + r * stride;
    for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] = src[i] * inv;
  }
}

// Combines the split partial states of one block: rescale each to the common max, then sum.
void merge_splits(const AttentionShape& shape, const Block& b,
                  const std::vector<PartialResult>& slots, int64_t stride, float* out) {
  for (int64_t r = 0; r < block_rows(shape, b.query); ++r) {
    const auto ri = static_cast<size_t>(r);
    float m = kNegInf;
    for (int64_t s = 0; s < b.n_splits; ++s)
      m = std::max(m, slots[static_cast<size_t>(b.first_slot + s)].m[ri]);
    float* dst = out + row_index(shape, b.query, r) * shape.head_dim;
    std::fill_n(dst, shape.head_dim, 0.0f);
    if (m == kNegInf) continue;
    float l = 0.0f;
    for (int64_t s = 0; s < b.n_splits; ++s) {
      const PartialResult& part = slots[static_cast<size_t>(b.first_slot + s)];
      if (part.l[ri] == 0.0f) continue;
      const float w = std::exp(part.m[ri] - m);
      l += part.l[ri] * w;
      for (int64_t i = 0; i < shape.head_dim; ++i)
        dst[i] += part.o[static_cast<size_t>(r * stride + i)] * w;
    }
    for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] /= l;
  }
}

// state ⊕= part for the rows of one block (online-softmax merge of two partial results).
void merge_into_state(const AttentionShape& shape, const QueryBlock& q, const PartialResult& part,
                      int64_t stride, AttentionState& state) {
  for (int64_t r = 0; r < block_rows(shape, q); ++r) {
    const auto ri = static_cast<size_t>(r);
    if (part.l[ri] == 0.0f) continue;
    const auto row = static_cast<size_t>(row_index(shape, q, r));
    const float m_old = state.max[row];
    const float m = std::max(m_old, part.m[ri]);
    const float w_old = m_old == kNegInf ? 0.0f : std::exp(m_old - m);
    const float w_new = std::exp(part.m[ri] - m);
    state.max[row] = m;
    state.denom[row] = state.denom[row] * w_old + part.l[ri] * w_new;
    float* dst = state.out.data() + row * static_cast<size_t>(shape.head_dim);
    const float* src = part.o.data() + r * stride;
    for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] = dst[i] * w_old + src[i] * w_new;
  }
}

// Copies the live part of a worker's state (rows x stride) into a split slot.
void save_partial(const PartialResult& acc, int64_t rows, int64_t stride, PartialResult* slot) {
  slot->m.assign(acc.m.begin(), acc.m.begin() + rows);
  slot->l.assign(acc.l.begin(), acc.l.begin() + rows);
  slot->o.assign(acc.o.begin(), acc.o.begin() + rows * stride);
}

void run_attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
                   KvType type, std::span<const KeyRun> runs, std::span<const BandMask> masks,
                   Target target, int n_threads) {
  validate(shape, runs, masks);
  check_kv_head_dim(type, shape.head_dim, "attention");
  if (n_query <= 0) return;
  Plan plan;
  plan_blocks(shape, n_query, q_pos0, runs, masks, &plan);
  const int threads =
      threads_for_work(n_threads, visible_macs(shape, plan), kMinAttentionMacsPerThread);
  plan_tasks(threads, &plan);
  std::vector<PartialResult> slots(static_cast<size_t>(plan.n_slots));
  int64_t stride = 0;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    thread_local TileWorker worker;
    worker.reset(shape, type, q, q_pos0);
#pragma omp single
    stride = worker.head_pad();
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < plan.tasks.size(); ++t) {
      const Task& task = plan.tasks[t];
      const Block& b = plan.blocks[static_cast<size_t>(task.block)];
      const std::span<const RunTiles> parts(plan.parts.data() + b.first_part, b.n_parts);
      worker.run(b.query, mask_of(masks, b.query.kv_head), runs, parts, task.t_begin, task.t_end);
      if (task.slot >= 0) {
        save_partial(worker.partial(), block_rows(shape, b.query), worker.head_pad(),
                     &slots[static_cast<size_t>(task.slot)]);
      } else if (target.out != nullptr) {
        write_normalised(shape, b.query, worker.partial(), worker.head_pad(), target.out);
      } else {
        merge_into_state(shape, b.query, worker.partial(), worker.head_pad(), *target.state);
      }
    }
  }
  for (const Block& b : plan.blocks) {
    if (b.n_splits == 1) continue;
    if (target.out != nullptr) {
      merge_splits(shape, b, slots, stride, target.out);
      continue;
    }
    for (int64_t s = 0; s < b.n_splits; ++s) {
      merge_into_state(shape, b.query, slots[static_cast<size_t>(b.first_slot + s)], stride,
                       *target.state);
    }
  }
}

// One run per KV head: the keys 0 .. n_keys-1 of a KvView, starting at key_pos0.
std::vector<KeyRun> runs_of_view(const AttentionShape& shape, const KvView& kv, int64_t key_pos0) {
  if (kv.n_keys < 0) fail("attention: n_keys {}: expected >= 0", kv.n_keys);
  std::vector<KeyRun> runs;
  for (int64_t g = 0; g < std::max<int64_t>(0, shape.n_head_kv); ++g) {
    const size_t offset = kv_bytes(kv.type, g * kv.head_stride, shape.head_dim);
    runs.push_back({g, static_cast<const uint8_t*>(kv.k) + offset,
                    static_cast<const uint8_t*>(kv.v) + offset, key_pos0, kv.n_keys});
  }
  return runs;
}

void check_state(const AttentionShape& shape, int64_t n_query, const AttentionState& state) {
  if (state.n_query != n_query || state.n_head != shape.n_head ||
      state.head_dim != shape.head_dim) {
    fail("attention: state is {} x {} x {}, expected {} queries x {} heads x {}", state.n_query,
         state.n_head, state.head_dim, n_query, shape.n_head, shape.head_dim);
  }
}

}  // namespace

void AttentionState::reset(int64_t n_query_rows, int64_t n_heads, int64_t dim) {
  n_query = n_query_rows;
  n_head = n_heads;
  head_dim = dim;
  const auto rows = static_cast<size_t>(n_query * n_head);
  max.assign(rows, kNegInf);
  denom.assign(rows, 0.0f);
  out.assign(rows * static_cast<size_t>(head_dim), 0.0f);
}

void attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
               const KvView& kv, std::span<const BandMask> masks, float* out, int n_threads) {
  const std::vector<KeyRun> runs = runs_of_view(shape, kv, 0);
  run_attention(shape, q, n_query, q_pos0, kv.type, runs, masks, {out, nullptr}, n_threads);
}

void attention_accumulate(const AttentionShape& shape, const float* q, int64_t n_query,
                          int64_t q_pos0, KvType type, std::span<const KeyRun> runs,
                          std::span<const BandMask> masks, AttentionState& state, int n_threads) {
  check_state(shape, n_query, state);
  run_attention(shape, q, n_query, q_pos0, type, runs, masks, {nullptr, &state}, n_threads);
}

void attention_accumulate(const AttentionShape& shape, const float* q, int64_t n_query,
                          int64_t q_pos0, const KvView& segment, int64_t key_pos0,
                          std::span<const BandMask> masks, AttentionState& state, int n_threads) {
  const std::vector<KeyRun> runs = runs_of_view(shape, segment, key_pos0);
  attention_accumulate(shape, q, n_query, q_pos0, segment.type, runs, masks, state, n_threads);
}

void attention_finish(const AttentionState& state, float* out) {
  const int64_t rows = state.n_query * state.n_head;
  for (int64_t r = 0; r < rows; ++r) {
    const float l = state.denom[static_cast<size_t>(r)];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const float* src = state.out.data() + r * state.head_dim;
    float* dst = out + r * state.head_dim;
    for (int64_t i = 0; i < state.head_dim; ++i) dst[i] = src[i] * inv;
  }
}

}  // namespace moa::kernels
