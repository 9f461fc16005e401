// Fashion-MNIST from Debian's dataset-fashion-mnist (gzipped IDX files). LibTorch's MNIST reader reads the
// IDX format; it wants the files uncompressed, so they are unpacked once into a cache folder.
#pragma once

#include <accelerate/data_loader.hpp>

#include <memory>
#include <string>

namespace fashion_mnist {

struct Splits {
  std::shared_ptr<accelerate::TensorDataset> train, test;
};

/// Unpacks (if needed) and loads both splits, normalised with Fashion-MNIST's mean and std. `limit` > 0 keeps
/// that many training samples. Call under main_process_first when several processes share the cache.
Splits load(const std::string& data_dir, std::string cache_dir, int64_t limit = 0);

}  // namespace fashion_mnist
