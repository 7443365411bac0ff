// One tile-level worker of flash attention: a block of query rows (all query heads of one KV
// group at a run of positions) streamed over a list of key tiles with an online softmax. The
// planner in attention.cc decides which rows and key tiles each worker gets. Internal to kernels/.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"

namespace moa::kernels {

inline constexpr int64_t kKeyTile = 64;    // keys per tile
inline constexpr int64_t kQueryTile = 64;  // query positions per tile

// The key tiles a block of queries can see: [0, sink_tiles) then [band_first, end_tiles),
// with band_first >= sink_tiles. Tile k covers slots [k * kKeyTile, (k + 1) * kKeyTile) of a run.
struct KeyTiles {
  int64_t sink_tiles = 0;
  int64_t band_first = 0;
  int64_t end_tiles = 0;
  int64_t end_key = 0;  // one past the last slot any of the queries may see

  int64_t count() const { return sink_tiles + end_tiles - band_first; }
  int64_t tile(int64_t t) const { return t < sink_tiles ? t : band_first + (t - sink_tiles); }
};

// s[j] = exp(s[j] - shift) for the kKeyTile scores of a tile row, 0 where s[j] is -inf (a
// hidden key); returns their sum.
float exp_shifted_tile(float* s, float shift);

// Converts n stored keys/values (F32 or F16) starting at src_row to F32.
void load_kv_row(KvType type, const void* src_row, int64_t n, float* dst);

// Tiles of a run of n_keys slots visible from queries at absolute positions q_first .. q_last
// under `mask`, when slot t holds the key at position key_pos0 + t. Tiles are in slot units.
KeyTiles visible_key_tiles(int64_t q_first, int64_t q_last, int64_t key_pos0, int64_t n_keys,
                           const BandMask& mask);

// The visible tiles of one key run for one block of queries.
struct RunTiles {
  int64_t run = 0;  // index into the call's runs
  KeyTiles tiles;
};

// A block of query rows: query positions [q_begin, q_end) (indices into the q array) of every
// query head of KV head `kv_head`.
struct QueryBlock {
  int64_t kv_head = 0;
  int64_t q_begin = 0;
  int64_t q_end = 0;
};

// Unnormalised result of a worker: per row the running max m, the softmax denominator l and
// the weighted value sum o (head_dim values). Rows are ordered (query, head within group).
struct PartialResult {
  std::vector<float> m, l, o;
};

// Per-thread buffers, sized once per attention call for the largest block.
class TileWorker {
 public:
  TileWorker(const AttentionShape& shape, KvType type, const float* q, int64_t q_pos0);
  // Runs `block` over the visible tiles [t_begin, t_end) of its runs, counted across `tiles` in
  // order, and leaves the result in partial().
  void run(const QueryBlock& block, const BandMask& mask, std::span<const KeyRun> runs,
           std::span<const RunTiles> tiles, int64_t t_begin, int64_t t_end);
  const PartialResult& partial() const { return acc_; }
  int64_t head_pad() const { return head_pad_; }  // row stride of partial().o

 private:
  void load_queries(const QueryBlock& block);
  void load_keys_values(const KeyRun& run, int64_t first_slot, int64_t n_keys_tile);
  void compute_scores(int64_t n_keys_tile);
  void mask_scores(const QueryBlock& block, const BandMask& mask, int64_t first_pos,
                   int64_t n_keys_tile);
  void update_row(int64_t r, int64_t n_keys_tile);

  AttentionShape shape_;
  KvType type_;
  const float* q_;
  int64_t q_pos0_;
  int64_t group_;            // query heads per KV head
  int64_t head_pad_;         // head_dim rounded up to whole vectors
  int64_t rows_ = 0;         // rows of the current block
  bool transposed_ = false;  // many rows: scores via K^T, vectorised over keys
  std::vector<float> q_tile_, k_tile_, k_transposed_, v_tile_, scores_;
  PartialResult acc_;
};

}  // namespace moa::kernels
