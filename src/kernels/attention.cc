// Causal flash attention over a KV cache with per-KV-head band masks (sinks + local span).
// Work is planned as query blocks (one KV head x up to kQueryTile positions, all query heads
// of the group together so each K/V tile is converted once) times the key tiles their mask
// leaves visible; hidden tiles are never touched, so cost scales with mask density. When there
// are few blocks (decode) or their costs differ (heads with different spans), a block's key
// tiles are split across tasks (split-K) and the partial softmax states are merged afterwards.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention_tile.h"
#include "kernels/kernels.h"
#include "util/error.h"

namespace moa::kernels {
namespace {

constexpr int64_t kMinTilesPerTask = 4;  // below this a split costs more in merging than it saves
constexpr int64_t kTasksPerThread = 4;   // slack for dynamic load balancing

struct Block {
  QueryBlock query;
  KeyTiles tiles;
  int64_t n_splits = 1;
  int64_t first_slot = 0;  // index of its first partial result when split
};

struct Task {
  int64_t block = 0;
  int64_t t_begin = 0;
  int64_t t_end = 0;
  int64_t slot = -1;  // partial-result slot, or -1: write straight to the output
};

void validate(const AttentionShape& shape, const KvView& kv, std::span<const BandMask> masks) {
  if (shape.n_head <= 0 || shape.n_head_kv <= 0 || shape.n_head % shape.n_head_kv != 0) {
    fail("attention: n_head {} / n_head_kv {}: expected a positive multiple", shape.n_head,
         shape.n_head_kv);
  }
  if (shape.head_dim <= 0) fail("attention: head_dim {}: expected > 0", shape.head_dim);
  if (!masks.empty() && static_cast<int64_t>(masks.size()) != shape.n_head_kv) {
    fail("attention: masks: {} given, expected 0 or n_head_kv = {}", masks.size(),
         shape.n_head_kv);
  }
  if (kv.n_keys < 0) fail("attention: n_keys {}: expected >= 0", kv.n_keys);
}

std::vector<Block> plan_blocks(const AttentionShape& shape, int64_t n_query, int64_t q_pos0,
                               int64_t n_keys, std::span<const BandMask> masks) {
  std::vector<Block> blocks;
  for (int64_t g = 0; g < shape.n_head_kv; ++g) {
    const BandMask mask = masks.empty() ? BandMask{} : masks[static_cast<size_t>(g)];
    for (int64_t q0 = 0; q0 < n_query; q0 += kQueryTile) {
      Block block;
      block.query = {g, q0, std::min(n_query, q0 + kQueryTile)};
      block.tiles = visible_key_tiles(q_pos0 + q0, q_pos0 + block.query.q_end - 1, n_keys, mask);
      blocks.push_back(block);
    }
  }
  return blocks;
}

// Splits blocks with many key tiles so that every thread gets several similar-sized tasks.
std::vector<Task> plan_tasks(std::vector<Block>& blocks, int n_threads, int64_t* n_slots) {
  int64_t total_tiles = 0;
  for (const Block& b : blocks) total_tiles += b.tiles.count();
  const int64_t target = std::max(kMinTilesPerTask, total_tiles / (kTasksPerThread * n_threads));
  std::vector<Task> tasks;
  *n_slots = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    Block& b = blocks[i];
    const int64_t count = b.tiles.count();
    b.n_splits = n_threads > 1 ? std::max<int64_t>(1, count / target) : 1;
    if (b.n_splits == 1) {
      tasks.push_back({static_cast<int64_t>(i), 0, count, -1});
      continue;
    }
    b.first_slot = *n_slots;
    for (int64_t s = 0; s < b.n_splits; ++s) {
      tasks.push_back({static_cast<int64_t>(i), s * count / b.n_splits,
                       (s + 1) * count / b.n_splits, *n_slots + s});
    }
    *n_slots += b.n_splits;
  }
  return tasks;
}

// Where row r of a block (query-major, then head within the group) lands in `out`.
float* output_row(const AttentionShape& shape, const QueryBlock& q, int64_t r, float* out) {
  const int64_t group = shape.n_head / shape.n_head_kv;
  const int64_t query = q.q_begin + r / group;
  const int64_t head = q.kv_head * group + r % group;
  return out + (query * shape.n_head + head) * shape.head_dim;
}

void write_normalised(const AttentionShape& shape, const QueryBlock& q, const PartialResult& acc,
                      int64_t stride, float* out) {
  const int64_t rows = (q.q_end - q.q_begin) * (shape.n_head / shape.n_head_kv);
  for (int64_t r = 0; r < rows; ++r) {
    const float l = acc.l[static_cast<size_t>(r)];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: output zeros
    float* dst = output_row(shape, q, r, out);
    for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] = acc.o[static_cast<size_t>(r * stride + i)] * inv;
  }
}

// Combines the split partial states of one block: rescale each to the common max, then sum.
void merge_splits(const AttentionShape& shape, const Block& b,
                  const std::vector<PartialResult>& slots, int64_t stride, float* out) {
  const int64_t rows = (b.query.q_end - b.query.q_begin) * (shape.n_head / shape.n_head_kv);
  for (int64_t r = 0; r < rows; ++r) {
    const auto ri = static_cast<size_t>(r);
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < b.n_splits; ++s) m = std::max(m, slots[static_cast<size_t>(b.first_slot + s)].m[ri]);
    float* dst = output_row(shape, b.query, r, out);
    std::fill_n(dst, shape.head_dim, 0.0f);
    if (m == -std::numeric_limits<float>::infinity()) continue;
    float l = 0.0f;
    for (int64_t s = 0; s < b.n_splits; ++s) {
      const PartialResult& part = slots[static_cast<size_t>(b.first_slot + s)];
      if (part.l[ri] == 0.0f) continue;
      const float w = std::exp(part.m[ri] - m);
      l += part.l[ri] * w;
      for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] += part.o[static_cast<size_t>(r * stride + i)] * w;
    }
    for (int64_t i = 0; i < shape.head_dim; ++i) dst[i] /= l;
  }
}

// Copies the live part of a worker's state (rows x stride) into a split slot.
void save_partial(const PartialResult& acc, int64_t rows, int64_t stride, PartialResult* slot) {
  slot->m.assign(acc.m.begin(), acc.m.begin() + rows);
  slot->l.assign(acc.l.begin(), acc.l.begin() + rows);
  slot->o.assign(acc.o.begin(), acc.o.begin() + rows * stride);
}

}  // namespace

void attention(const AttentionShape& shape, const float* q, int64_t n_query, int64_t q_pos0,
               const KvView& kv, std::span<const BandMask> masks, float* out, int n_threads) {
  validate(shape, kv, masks);
  if (n_query <= 0) return;
  const int threads = std::max(1, n_threads);
  std::vector<Block> blocks = plan_blocks(shape, n_query, q_pos0, kv.n_keys, masks);
  int64_t n_slots = 0;
  const std::vector<Task> tasks = plan_tasks(blocks, threads, &n_slots);
  std::vector<PartialResult> slots(static_cast<size_t>(n_slots));
  const int64_t group = shape.n_head / shape.n_head_kv;
  int64_t stride = 0;
#pragma omp parallel num_threads(threads)
  {
    TileWorker worker(shape, kv, q, q_pos0);
#pragma omp single
    stride = worker.head_pad();
#pragma omp for schedule(dynamic, 1)
    for (size_t t = 0; t < tasks.size(); ++t) {
      const Task& task = tasks[t];
      const Block& b = blocks[static_cast<size_t>(task.block)];
      const BandMask mask = masks.empty() ? BandMask{} : masks[static_cast<size_t>(b.query.kv_head)];
      worker.run(b.query, mask, b.tiles, task.t_begin, task.t_end);
      if (task.slot < 0) {
        write_normalised(shape, b.query, worker.partial(), worker.head_pad(), out);
      } else {
        save_partial(worker.partial(), (b.query.q_end - b.query.q_begin) * group,
                     worker.head_pad(), &slots[static_cast<size_t>(task.slot)]);
      }
    }
  }
  for (const Block& b : blocks) {
    if (b.n_splits > 1) merge_splits(shape, b, slots, stride, out);
  }
}

}  // namespace moa::kernels
