// Internal: ZeRO stage 3's units (include/accelerate/sharding_unit.hpp). Each unit's bucket (zero_partition.hpp)
// is one flat buffer of world_size * shard_numel elements whose storage the unit's parameters view (FSDP2's
// unsharded flat parameter). Between uses the storage is freed (resized to 0 bytes, as FSDP2's
// storage.resize_(0)) and the parameters point at a storage whose every access throws a StateError-like message:
// they keep their shapes and autograd identity (set_data keeps the version counter and the grad accumulator),
// and what autograd saved of them sees the values again once the storage is refilled by an all-gather of every
// rank's param_shard.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include <accelerate/sharding_unit.hpp>

#include "detail/zero_partition.hpp"

namespace c10d {
class Work;
}
namespace torch::nn {
class Module;
}

namespace accelerate {
struct FsdpOptions;
}

namespace accelerate::detail {

class Communicator;

class ShardedUnit {
 public:
  /// Takes over `bucket`'s parameters: makes them views of the flat buffer (on `device`), keeps this rank's
  /// shard in bucket.param_shard and frees the buffer. `from_rank0`: the shards are rank 0's values (a scatter;
  /// rank 0's parameters hold weights); else the unit has no weights until load_slice fills every parameter
  /// (built through init_empty_weights on rank 0).
  ShardedUnit(Communicator& comm, ZeroBucket& bucket, std::string name, c10::Device device, bool from_rank0);
  ShardedUnit(const ShardedUnit&) = delete;
  ShardedUnit& operator=(const ShardedUnit&) = delete;

  /// The parameters hold every rank's values when it returns (an all-gather, or the wait for a prefetch).
  void unshard();
  /// Starts the all-gather without waiting (a no-op when gathered or gathering).
  void prefetch();
  /// Frees the flat buffer (after waiting for a gather in flight), unless pinned by summon.
  void reshard();
  /// While pinned the unit stays gathered and reshard() does nothing (summon_full_params).
  void pin() { ++pins_; }
  void unpin() { --pins_; }
  bool pinned() const { return pins_ > 0; }
  /// Copies this rank's part of the gathered values back into param_shard (the parameters were written).
  void write_back();
  /// Whether `param` (or a detached alias of it) is one of this unit's parameters.
  bool holds(const at::Tensor& param) const;
  /// Reads elements [begin, begin + length) of a parameter's flat view (from a mapped file: only those pages).
  using SliceReader = std::function<at::Tensor(int64_t begin, int64_t length)>;
  /// If `param` is one of this unit's: copies this rank's slice of it, from `read`, into the shard (and the
  /// whole parameter into the parameter while gathered); true then.
  bool load_slice(const at::Tensor& param, const SliceReader& read);
  /// This rank's elements of `param` (one of this unit's): elements [begin, begin + values.numel()) of its flat
  /// view, `values` a view into the shard (0 elements when it keeps none); nullopt when it is not this unit's.
  struct KeptSlice {
    int64_t begin = 0;
    at::Tensor values;
  };
  std::optional<KeptSlice> kept_slice(const at::Tensor& param) const;
  /// Rank 0's weights or a load filled every parameter; StateError naming the unit otherwise.
  void check_materialised() const;
  /// The units before and after this one in registration order (backward and forward prefetch).
  ShardedUnit* previous = nullptr;
  ShardedUnit* next = nullptr;
  bool forward_prefetch = true, backward_prefetch = true;

 private:
  enum class State { Free, Gathering, Gathered };
  void allocate();
  /// Every parameter of the unit set to its tensor in `at` (views_ or freed_).
  void point_parameters(const std::vector<at::Tensor>& at);
  Communicator& comm_;
  ZeroBucket& bucket_;
  std::string name_;
  at::Tensor full_;  // world_size * shard_numel elements; the parameters are views of its storage
  // Per entry: the parameter's view into full_ (while gathered), and one into a storage without data whose every
  // access throws, saying what went wrong (while freed; LibTorch would read or write a null pointer otherwise).
  std::vector<at::Tensor> views_, freed_;
  c10::intrusive_ptr<c10d::Work> work_;
  State state_ = State::Free;
  int pins_ = 0;
  std::vector<bool> loaded_;  // per entry: holds weights (all true when they came from rank 0)
};

/// The unit a ShardingUnit mixin points at: nullptr unless a stage-3 Accelerator holds the prepared model (set by
/// ShardedUnits only).
struct UnitAccess {
  static ShardedUnit*& unit(ShardingUnit& module) { return module.unit_; }
};

/// The units of one prepared model: made at prepare (stage 3), attached to their modules until released.
class ShardedUnits {
 public:
  /// `units[u]` (name, module) is unit u of `partition` (find_units' order, as ShardedParameters::partition
  /// found them). Collective: rank 0 says which units it holds weights for, and those are scattered from it.
  ShardedUnits(Communicator& comm, ZeroPartition& partition,
               const std::vector<std::pair<std::string, ShardingUnit*>>& units, c10::Device device,
               const FsdpOptions& prefetch);
  /// Detaches the units from their modules (the parameters stay freed: release() first to keep them).
  ~ShardedUnits();
  ShardedUnits(const ShardedUnits&) = delete;
  ShardedUnits& operator=(const ShardedUnits&) = delete;

  /// Every unit gathered and pinned (collective, in unit order); unpinned and freed by end_summon.
  void begin_summon();
  /// `write_back`: the parameters were changed (a load): each rank keeps its part of them as its shard.
  void end_summon(bool write_back);
  /// A summon_full_params guard (or save_state's gather) holds the units.
  bool summoned() const;
  /// After a backward: frees every unit still gathered (one whose input needed no gradient, or prefetched).
  void reshard_all();
  /// Collective: gathers every unit for good and detaches it, so the model is an ordinary one again
  /// (free_memory, before a model is prepared anew).
  void release();

 private:
  std::vector<std::unique_ptr<ShardedUnit>> units_;
  std::vector<ShardingUnit*> modules_;
};

/// Every unit of `units` (nullptr: nothing to do) gathered while alive (collective at construction);
/// keep_changes() makes each rank keep its part of the parameters as written meanwhile (a load).
class [[nodiscard]] Summoned {
 public:
  explicit Summoned(ShardedUnits* units) : units_(units) {
    if (units_) units_->begin_summon();
  }
  ~Summoned() {
    if (units_) units_->end_summon(write_back_);
  }
  Summoned(const Summoned&) = delete;
  Summoned& operator=(const Summoned&) = delete;
  void keep_changes() { write_back_ = true; }

 private:
  ShardedUnits* units_;
  bool write_back_ = false;
};

/// `model`'s parameters and buffers fetched by state-dict name, each unit gathered while its tensors are fetched
/// and freed when the next one's are: at most one unit gathered at once. Collective: every process fetches the
/// same names in the same order. StateError naming a unit without weights, at construction (on every process).
class UnitStream {
 public:
  explicit UnitStream(torch::nn::Module& model);
  ~UnitStream();
  UnitStream(const UnitStream&) = delete;
  UnitStream& operator=(const UnitStream&) = delete;
  /// The tensor `name` (gathered, while it is the current unit's).
  at::Tensor fetch(const std::string& name);

 private:
  std::vector<std::pair<std::string, ShardedUnit*>> units_;  // by name prefix ("h.0.")
  std::map<std::string, at::Tensor> tensors_;                // the parameters and buffers themselves
  ShardedUnit* current_ = nullptr;
};

/// `model`'s parameters and buffers by state-dict name through a UnitStream (collective); CPU copies where `keep`
/// (the process that writes them), else nothing.
std::map<std::string, at::Tensor> gathered_model_state(torch::nn::Module& model, bool keep);

/// The ZeRO-3 units of a prepared model's ShardingUnit modules (none before prepare or at other stages).
std::vector<ShardedUnit*> units_of(torch::nn::Module& model);

/// The ShardingUnit submodules of `module` (a unit inside a unit is refused with ConfigError) and their names.
std::vector<std::pair<std::string, ShardingUnit*>> find_units(torch::nn::Module& module);

}  // namespace accelerate::detail
