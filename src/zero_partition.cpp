// ZeRO's partition of a model's parameters into buckets and equal per-rank shards (detail/zero_partition.hpp).
#include "detail/trace_range.hpp"
#include "detail/zero_partition.hpp"

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>

#include "detail/communicator.hpp"

namespace accelerate::detail {

ZeroPartition::ZeroPartition(const std::vector<at::Tensor>& params, int world_size, int rank, int64_t bucket_cap_bytes,
                             c10::Device device, bool shard_gradients,
                             const std::vector<std::vector<at::Tensor>>& units,
                             const std::vector<std::string>& unit_names)
    : world_(world_size),
      rank_(rank),
      device_(device),
      shard_gradients_(shard_gradients),
      bucket_cap_bytes_(bucket_cap_bytes) {
  std::unordered_map<const void*, int> unit_of;
  for (size_t u = 0; u < units.size(); ++u) {
    for (const auto& p : units[u]) unit_of.emplace(p.unsafeGetTensorImpl(), static_cast<int>(u));
  }
  std::vector<bool> unit_started(units.size(), false);
  // Gradients arrive roughly in reverse registration order; stage 2 reduces a bucket as soon as it is complete.
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const auto& p = *it;
    ACCELERATE_CHECK(p.is_contiguous(), ConfigError, "ZeRO: a parameter of shape ", p.sizes(),
                     " is not contiguous; ZeRO shards flat views of the parameters. Make it contiguous before "
                     "prepare (param.data() = param.contiguous()).");
    const auto found = unit_of.find(p.unsafeGetTensorImpl());
    const int unit = found == unit_of.end() ? -1 : found->second;
    const bool same_kind = !buckets_.empty() &&
                           buckets_.back().entries.front().param.scalar_type() == p.scalar_type() &&
                           buckets_.back().entries.front().param.device() == p.device();
    const bool fits =
        !buckets_.empty() && buckets_.back().unit == unit &&
        (unit >= 0 || (same_kind && (buckets_.back().numel + p.numel()) * p.element_size() <= bucket_cap_bytes));
    if (!fits) {
      if (unit >= 0) {
        ACCELERATE_CHECK(!unit_started[unit], ConfigError, "ZeRO stage 3: the parameters of unit '",
                         unit < static_cast<int>(unit_names.size()) ? unit_names[unit] : std::to_string(unit),
                         "' are not consecutive among the model's parameters: one of them is shared with a module "
                         "outside the unit (a tied weight). Keep shared parameters outside units.");
        unit_started[unit] = true;
      }
      buckets_.emplace_back();
      buckets_.back().unit = unit;
    }
    auto& bucket = buckets_.back();
    bucket.entries.push_back({p, bucket.numel});
    bucket.numel += p.numel();
    bucket_of_[p.unsafeGetTensorImpl()] = buckets_.size() - 1;
  }
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    auto& bucket = buckets_[b];
    bucket.shard_numel = (bucket.numel + world_ - 1) / world_;
    if (shard_gradients_) bucket.grad_shard = at::zeros({bucket.shard_numel}, shard_options(bucket));
    for (size_t e = 0; e < bucket.entries.size(); ++e) {
      auto piece = piece_of_rank(b, e, rank_);
      if (piece.length > 0) pieces_.emplace(piece.param.unsafeGetTensorImpl(), std::move(piece));
    }
  }
}

bool ZeroPartition::contains(const at::Tensor& param) const {
  return bucket_of_.count(param.unsafeGetTensorImpl()) > 0;
}

const ZeroPiece* ZeroPartition::piece(const at::Tensor& param) const {
  auto it = pieces_.find(param.unsafeGetTensorImpl());
  return it == pieces_.end() ? nullptr : &it->second;
}

at::TensorOptions ZeroPartition::shard_options(const ZeroBucket& bucket) const {
  return at::TensorOptions().dtype(bucket.entries.front().param.scalar_type()).device(device_);
}

at::Tensor ZeroPartition::piece_values(const ZeroPiece& piece) {
  const auto& bucket = buckets_.at(piece.bucket);
  if (bucket.unit >= 0) return bucket.param_shard.narrow(0, piece.shard_offset, piece.length);
  return piece.param.detach().view(-1).narrow(0, piece.begin, piece.length);
}

ZeroPiece ZeroPartition::piece_of_rank(size_t b, size_t e, int r) const {
  const auto& bucket = buckets_.at(b);
  const auto& entry = bucket.entries.at(e);
  const int64_t shard_begin = r * bucket.shard_numel;
  const int64_t lo = std::max(entry.offset, shard_begin);
  const int64_t hi = std::min(entry.offset + entry.param.numel(), shard_begin + bucket.shard_numel);
  ZeroPiece piece{entry.param, b, 0, 0, 0};
  if (hi <= lo) return piece;
  piece.begin = lo - entry.offset;
  piece.length = hi - lo;
  piece.shard_offset = lo - shard_begin;
  return piece;
}

namespace {

/// Writes `values` to elements [begin, begin + values.numel()) of the bucket's flat layout, i.e. into the
/// parameters that hold them.
void write_flat(const ZeroBucket& bucket, int64_t begin, const at::Tensor& values) {
  const int64_t end = begin + values.numel();
  for (const auto& entry : bucket.entries) {
    const int64_t lo = std::max(entry.offset, begin), hi = std::min(entry.offset + entry.param.numel(), end);
    if (hi > lo)
      entry.param.view(-1).narrow(0, lo - entry.offset, hi - lo).copy_(values.narrow(0, lo - begin, hi - lo));
  }
}

// The all-gather goes in chunks of this many bytes per rank: its receive buffer is world_size chunks, not a whole
// bucket, which would otherwise stay in the process's heap next to the state that stage 1 saved.
constexpr int64_t kGatherChunkBytes = 4 << 20;

}  // namespace

void ZeroPartition::gather_parameters(Communicator& comm) {
  constexpr const char* kOp = "optimizer step (ZeRO all-gather of the updated parameters)";
  at::NoGradGuard no_grad;
  CollectiveScope scope(comm, kOp);
  for (auto& bucket : buckets_) {
    if (bucket.unit >= 0) continue;  // gathered when its unit runs
    const auto options = bucket.entries.front().param.options();
    auto mine = at::zeros({bucket.shard_numel}, options);
    for (const auto& entry : bucket.entries) {
      if (const auto* p = piece(entry.param)) {
        mine.narrow(0, p->shard_offset, p->length).copy_(entry.param.view(-1).narrow(0, p->begin, p->length));
      }
    }
    // A quarter bucket at most, so that small buckets (the tests') go in several chunks too.
    const int64_t chunk_bytes = std::min(kGatherChunkBytes, bucket_cap_bytes_ / 4);
    const int64_t chunk = std::max<int64_t>(1, chunk_bytes / static_cast<int64_t>(mine.element_size()));
    for (int64_t off = 0; off < bucket.shard_numel; off += chunk) {
      const int64_t len = std::min(chunk, bucket.shard_numel - off);
      auto all = at::empty({len * world_}, options);
      auto part = mine.narrow(0, off, len);
      TraceRange range("accelerate::all_gather");
      comm.translating(kOp, [&] { comm.wait(comm.group()._allgather_base(all, part), kOp); });
      for (int r = 0; r < world_; ++r) write_flat(bucket, r * bucket.shard_numel + off, all.narrow(0, r * len, len));
    }
  }
}

}  // namespace accelerate::detail
