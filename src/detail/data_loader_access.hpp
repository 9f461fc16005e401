// The one way into DataLoader::prepare: the Accelerator prepares loaders, and the sharding tests prepare one
// for each rank of a simulated world (the ShardOptions then differ from the state's own rank and world).
#pragma once

#include <accelerate/data_loader.hpp>

namespace accelerate::detail {

struct DataLoaderAccess {
  static void prepare(DataLoader& loader, const ProcessState& state, GradientState& gradient_state, ShardOptions shard,
                      c10::Device device) {
    loader.prepare(state, gradient_state, shard, device);
  }
};

}  // namespace accelerate::detail
