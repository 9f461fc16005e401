// Datasets: map-style (size + get(i), as torch.utils.data.Dataset), tensors (TensorDataset), torch::data datasets,
// and token windows over a memory-mapped token file (nanoGPT's and llm.c's .bin).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <accelerate/batch.hpp>
#include <torch/data/example.h>

namespace accelerate {

/// A map-style dataset. get() and get_batch() are called from the loader's worker threads, concurrently when
/// num_workers > 1: they must be safe to call from several threads (reading is; a shared cursor is not).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Batch get(int64_t index) const = 0;
  /// The samples at `indices` collated by default_collate. Override when the data allows a faster gather; the
  /// loader calls it only when it has no collate of its own.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
};

/// Tensors whose dim 0 indexes samples (like torch.utils.data.TensorDataset): fields "data" and "target".
class TensorDataset final : public Dataset {
 public:
  TensorDataset(at::Tensor data, at::Tensor targets);
  int64_t size() const override { return data_.size(0); }
  Batch get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

 private:
  at::Tensor data_, targets_;
};

/// Adapts a torch::data map dataset (e.g. torch::data::datasets::MNIST): fields "data" and "target".
template <class TorchDataset>
std::shared_ptr<Dataset> from_torch_dataset(TorchDataset dataset) {
  class Adapter final : public Dataset {
   public:
    explicit Adapter(TorchDataset d) : d_(std::move(d)) {}
    int64_t size() const override { return static_cast<int64_t>(d_.size().value()); }
    Batch get(int64_t index) const override {
      auto example = const_cast<TorchDataset&>(d_).get(static_cast<size_t>(index));
      return Batch(example.data, example.target);
    }

   private:
    TorchDataset d_;
  };
  return std::make_shared<Adapter>(std::move(dataset));
}

/// A stream of samples read in order (torch.utils.data.IterableDataset), for data that cannot be indexed. Every
/// process reads the whole stream and keeps its share of each global batch (HF's IterableDatasetShard), so the
/// stream must be the same on every rank; shuffle inside the stream (seeded from the epoch) if you need to.
/// start() and next() are called from one loading thread at a time.
class IterableDataset {
 public:
  virtual ~IterableDataset() = default;
  /// Starts a pass over the data (an epoch).
  virtual void start(int64_t epoch) = 0;
  /// The next sample, or std::nullopt when the pass is over.
  virtual std::optional<Batch> next() = 0;
};

/// Element type of a token file.
enum class TokenType { UInt16, UInt32 };

struct TokenDatasetOptions {
  /// Tokens a sample trains on (the model's context length).
  int64_t block_size = 256;
  /// Tokens between the starts of consecutive samples; 0: block_size (windows that do not overlap).
  int64_t stride = 0;
  TokenType token_type = TokenType::UInt16;
};

/// Windows over a binary file of token ids, memory-mapped (never read whole): sample i is the window
/// [i*stride, i*stride + block_size + 1) of tokens, given as "input_ids" (its first block_size tokens) and
/// "labels" (its last block_size: the next token of each position), both int64 of shape (block_size).
/// The file is nanoGPT's raw .bin (uint16 ids, no header) or llm.c's (a 1024-byte header whose first int32 is
/// 20240520, then uint16 ids; detected, and its token count checked). CheckpointError naming the file when it
/// is missing, unreadable, shorter than one window, or not a whole number of tokens.
class TokenDataset final : public Dataset {
 public:
  TokenDataset(const std::string& path, TokenDatasetOptions options = {});
  ~TokenDataset() override;
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  int64_t size() const override { return size_; }
  /// Tokens in the file.
  int64_t num_tokens() const { return num_tokens_; }
  Batch get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

 private:
  /// The window of sample `index`, as int64 (block_size + 1 tokens).
  at::Tensor window(int64_t index) const;

  std::string path_;
  TokenDatasetOptions options_;
  const unsigned char* tokens_ = nullptr;  // the first token, inside the mapping
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  int64_t num_tokens_ = 0, size_ = 0;
};

}  // namespace accelerate
