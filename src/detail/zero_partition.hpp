// Internal: how ZeRO stages 1-3 split one model's trainable parameters over the processes.
//
// The parameters are laid out, in the order their gradients arrive (reverse registration order, as the DDP
// Reducer's buckets), in buckets of at most bucket_cap bytes; each bucket's flat range is cut into world_size
// equal shards (the last padded), and rank r owns shard r of every bucket, as FSDP shards each flat parameter.
// A parameter may straddle a shard boundary: each rank then owns a piece of it. Equal shards make the
// reduce-scatter of stage 2 and the all-gather of the updated parameters single c10d calls per bucket.
// At stage 3 each ZeRO-3 unit's parameters form one bucket of their own, whatever its size (FSDP2's parameter
// group), and this rank's shard of its values is kept in the bucket: the parameters themselves are freed
// (sharded_units.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/TensorOptions.h>

namespace accelerate::detail {

class Communicator;

/// One parameter's place in its bucket's flat layout.
struct BucketEntry {
  at::Tensor param;
  int64_t offset = 0;  ///< first element in the bucket
};

struct ZeroBucket {
  std::vector<BucketEntry> entries;
  int64_t numel = 0;        ///< elements of the parameters, unpadded
  int64_t shard_numel = 0;  ///< ceil(numel / world_size): every rank's shard, padding included
  /// Stage 2: this rank's shard of the averaged gradients (shard_numel elements), the gradients its pieces hold.
  at::Tensor grad_shard;
  /// Stage 3: the index of the unit whose parameters this bucket holds (-1: parameters kept whole on every rank).
  int unit = -1;
  /// Stage 3, a unit's bucket: this rank's shard of the parameters' values (shard_numel elements), what the
  /// optimizer steps and the all-gather sends; set by ShardedUnit.
  at::Tensor param_shard;
};

/// This rank's slice of one parameter: elements [begin, begin + length) of its flat view, which are elements
/// [shard_offset, shard_offset + length) of this rank's shard of bucket `bucket`.
struct ZeroPiece {
  at::Tensor param;
  size_t bucket = 0;
  int64_t begin = 0, length = 0, shard_offset = 0;
};

class ZeroPartition {
 public:
  /// `params`: the model's trainable parameters, each once, in registration order; contiguous (ConfigError
  /// otherwise). Stage 2 allocates the gradient shards.
  /// `units` (stage 3): the trainable parameters of each unit (of one dtype: ShardedParameters checks it by
  /// name), each a bucket of its own; they must be consecutive in `params` (ConfigError naming the unit otherwise).
  /// The shards live on `device` (a unit's parameters may be on the meta device until ShardedUnit places them).
  ZeroPartition(const std::vector<at::Tensor>& params, int world_size, int rank, int64_t bucket_cap_bytes,
                c10::Device device, bool shard_gradients, const std::vector<std::vector<at::Tensor>>& units = {},
                const std::vector<std::string>& unit_names = {});

  /// Whether each bucket keeps this rank's gradient shard (stage 2), into which its gradients are reduce-scattered.
  bool shards_gradients() const { return shard_gradients_; }
  int world_size() const { return world_; }
  int rank() const { return rank_; }
  std::vector<ZeroBucket>& buckets() { return buckets_; }
  /// Whether `param` is one of the partitioned parameters.
  bool contains(const at::Tensor& param) const;
  /// This rank's piece of `param`; nullptr when it owns none of it (or `param` is not partitioned).
  const ZeroPiece* piece(const at::Tensor& param) const;
  /// Dtype and device of bucket `b`'s shards.
  at::TensorOptions shard_options(const ZeroBucket& bucket) const;
  /// The values the optimizer steps for `piece`: a flat view into its parameter, or, in a unit's bucket, into
  /// the bucket's param_shard (the parameter's own storage is freed between uses).
  at::Tensor piece_values(const ZeroPiece& piece);
  /// The pieces of every rank for bucket `b`'s entry `e`, for rank `r`: the part of [offset, offset + numel) in
  /// [r * shard, (r + 1) * shard), as a piece (length 0 when none).
  ZeroPiece piece_of_rank(size_t b, size_t e, int r) const;

  /// After the optimizer stepped the pieces: every rank sends its shard of each bucket and receives the others'
  /// (one all-gather per bucket), so that all parameters are equal everywhere again. Units' buckets are skipped:
  /// they are gathered when they run.
  void gather_parameters(Communicator& comm);

 private:
  int world_, rank_;
  c10::Device device_;
  bool shard_gradients_;
  int64_t bucket_cap_bytes_;
  std::vector<ZeroBucket> buckets_;
  std::unordered_map<const void*, ZeroPiece> pieces_;  // this rank's, by TensorImpl
  std::unordered_map<const void*, size_t> bucket_of_;
};

}  // namespace accelerate::detail
