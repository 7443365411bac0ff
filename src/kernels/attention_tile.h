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

// Converts one stored key/value row (n = head_dim values, F32, F16 or Q8_0) to F32.
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

// Rows-in-lanes tile math for decode-shaped blocks (attention_lanes.cc). The lane width W is 4,
// 8 or 16; lanes past the block's rows are padding whose results are never read.
inline constexpr int64_t kMaxLaneRows = 16;

// Blocks of fewer than 4 rows take the lanes path up to this head size (their row dots keep one
// slice layout per 16 dimensions on the stack).
inline constexpr int64_t kMaxRowDotHeadDim = 256;

// W (4, 8 or 16) for a block of `rows` rows, or 0 when the rows-in-lanes path does not apply (too
// many rows, fewer than 4 with head_dim past kMaxRowDotHeadDim, head_dim not a multiple of 16, or
// a CPU without 16-float vectors).
int64_t lane_width(int64_t rows, int64_t head_dim);

// The worker's buffers as the lane kernels see them.
struct LaneBuffers {
  float* scores = nullptr;  // [kKeyTile][W]: scores, then probabilities
  float* m = nullptr;       // W running maxima
  float* l = nullptr;       // W running denominators
  float* o = nullptr;       // W rows of o_stride floats
  int64_t o_stride = 0;
  int64_t rows = 0;  // real rows (<= W); the values pass may stop at the next multiple of 4
};

// The next tile's key and value rows (`lines` cache lines each), requested a line or two per
// step while this tile's scores (keys) and values (values) are computed: a steady stream, where
// requesting a whole tile at once stalled on the CPU's limit of outstanding misses.
struct TilePrefetch {
  const char* k = nullptr;
  const char* v = nullptr;
  int64_t lines = 0;  // 0: nothing to request
};

// The stored values of one tile.
struct LaneTile {
  KvType type = KvType::kF32;
  const void* v = nullptr;  // the tile's first value row
  int64_t n_keys = 0;       // value rows present (the rest of the tile is masked)
  int64_t head_dim = 0;
  TilePrefetch next;  // its values are requested during the values pass
};

// Q K^T of a lanes tile with 16 / width keys per 16-float vector (attention_lanes.cc; only
// where lane_width gives a width, which implies 16-float vectors).
// q_lanes [head_dim][width] -> q_groups [head_dim][16] in the order of lane_group_keys.
void lane_group_queries(int64_t width, const float* q_lanes, int64_t head_dim, float* q_groups);
// A tile's stored key rows (n_keys; zeros after) -> F32 key groups (kKeyTile x head_dim floats).
void lane_group_keys(int64_t width, KvType type, const void* k, int64_t n_keys, int64_t head_dim,
                     float* k_groups);
// scores [kKeyTile][width] = Q K^T from the grouped queries and keys; requests next.k meanwhile.
void lane_tile_scores_grouped(int64_t width, int64_t head_dim, const float* q_groups,
                              const float* k_groups, float* scores, const TilePrefetch& next);
// The same scores for 1-3 rows (4 lanes) straight from the stored key rows: q holds the scaled
// query rows, q_stride apart; requests next.k meanwhile.
void lane_tile_scores_rows(int64_t rows, KvType type, const void* k, int64_t n_keys,
                           int64_t head_dim, const float* q, int64_t q_stride, float* scores,
                           const TilePrefetch& next);
// Online-softmax update of m, l and o with the (masked) scores and the tile's values.
void lane_tile_update(int64_t width, const LaneTile& tile, LaneBuffers& buffers);
// The softmax half of lane_tile_update: scores become probabilities, m and l are updated, and
// correction[0 .. width) gets the factor each row's o must be scaled by.
void lane_tile_softmax(int64_t width, LaneBuffers& buffers, float* correction);

// BF16 products for the lanes path over an F16 cache (attention_bf16.cc), used when the
// caller asks (AttentionShape::bf16_products). True where the CPU has AVX512-BF16.
bool bf16_attention_available();
// q_lanes [head_dim][width] F32 -> [head_dim / 2][width] BF16 pairs (head_dim even).
void bf16_query_pairs(const float* q_lanes, int64_t head_dim, int64_t width, uint32_t* out);
// F16 keys -> BF16: n values (a multiple of 16; a whole tile of rows at once).
void bf16_key_row(const uint16_t* f16_row, int64_t n, uint16_t* dst);
// scores = Q K^T for a tile of kKeyTile BF16 key rows (head_dim apart).
void lane_tile_scores_bf16(int64_t width, int64_t head_dim, const uint32_t* q_pairs,
                           const uint16_t* k_tile, float* scores);
// o = o * correction + P V with the F16 values of `tile`; p_pairs holds kKeyTile / 2 x width.
void lane_tile_values_bf16(int64_t width, const LaneTile& tile, const LaneBuffers& buffers,
                           const float* correction, uint32_t* p_pairs);

// Per-thread buffers, sized once per attention call for the largest block.
class TileWorker {
 public:
  // Prepares the worker for one attention call; buffers are kept from earlier calls, so a
  // thread-local worker costs no allocation (and no page faults) per layer.
  void reset(const AttentionShape& shape, KvType type, const float* q, int64_t q_pos0);
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
  // Score (row r, key j) sits at scores_[r * row_stride + j * key_stride].
  void mask_scores(const QueryBlock& block, const BandMask& mask, int64_t first_pos,
                   int64_t n_keys_tile, int64_t row_stride, int64_t key_stride);
  // next_slot, next_keys: the first slot and keys of the tile this worker runs next in the same
  // run (0 keys: none); streamed: this tile was requested during the one before.
  void run_lane_tile(const KeyRun& run, const QueryBlock& block, const BandMask& mask,
                     int64_t first_slot, int64_t n_keys_tile, int64_t next_slot, int64_t next_keys,
                     bool streamed);
  // Online-softmax step of row r (scores become probabilities); false if it sees no key here.
  bool softmax_row(int64_t r, float* correction);
  void update_rows(int64_t n_keys_tile);
  // Lanes tiles of 4 or more rows multiplying in F32 take their keys as key groups (fewer rows
  // take dot products of the stored key rows).
  bool grouped_keys() const { return lane_width_ > 0 && !bf16_ && rows_ >= 4; }
  // Lanes tiles multiply in BF16 when asked for 4 or more rows; fewer keep F32 row dots, which
  // already waste no products.
  bool lane_bf16() const { return bf16_ && rows_ >= 4; }

  AttentionShape shape_;
  KvType type_ = KvType::kF32;
  const float* q_ = nullptr;
  int64_t q_pos0_ = 0;
  int64_t group_ = 1;        // query heads per KV head
  int64_t head_pad_ = 0;     // head_dim rounded up to whole vectors
  int64_t rows_ = 0;         // rows of the current block
  bool transposed_ = false;  // many rows: scores via K^T, vectorised over keys
  int64_t lane_width_ = 0;   // few rows: rows in SIMD lanes (0 = not used)
  bool bf16_ = false;        // lanes tiles multiply in BF16 (F16 cache, AVX512-BF16)
  std::vector<float> q_tile_, q_lanes_, q_lane_groups_, k_tile_, k_groups_, k_transposed_, v_tile_,
      scores_;
  std::vector<uint32_t> q_pairs_, p_pairs_;
  std::vector<uint16_t> k_bf16_;
  PartialResult acc_;
};

}  // namespace moa::kernels
