// The DataLoader's two batch sources behind one interface (detail/batch_source.hpp).
#include "detail/batch_source.hpp"

namespace accelerate::detail {

namespace {

class IndexedSource final : public BatchSource {
 public:
  IndexedSource(std::vector<std::vector<int64_t>> batches, LoaderWorkers* workers, LoadBatch load, uint64_t base_seed,
                int64_t remainder)
      : count_(static_cast<int64_t>(batches.size())), workers_(workers), load_(std::move(load)), remainder_(remainder) {
    if (workers_) {
      workers_->start(std::move(batches), load_, base_seed);
    } else {
      batches_ = std::move(batches);  // loaded on demand, on this thread
    }
  }
  bool has_next() override { return pulled_ < count_; }
  Batch next() override {
    const int64_t k = pulled_++;  // counted before loading: a failed batch is not loaded again
    if (workers_) return workers_->next();
    return load_(k, batches_[static_cast<size_t>(k)]);
  }
  int64_t remainder() const override { return remainder_; }

 private:
  int64_t count_, pulled_ = 0;
  LoaderWorkers* workers_;
  LoadBatch load_;
  std::vector<std::vector<int64_t>> batches_;
  int64_t remainder_;
};

class StreamSource final : public BatchSource {
 public:
  StreamSource(std::function<std::optional<Batch>()> produce, bool background, int depth, int64_t skip,
               std::shared_ptr<std::atomic<int64_t>> remainder)
      : reader_(std::move(produce), background, depth), remainder_(std::move(remainder)) {
    for (int64_t i = 0; i < skip; ++i) {  // a resume: read past what was handed out
      if (!reader_.next()) break;
    }
  }
  bool has_next() override {
    if (!peeked_) {
      lookahead_ = reader_.next();
      peeked_ = true;
    }
    return lookahead_.has_value();
  }
  Batch next() override {
    has_next();
    peeked_ = false;
    return std::move(*lookahead_);
  }
  int64_t remainder() const override { return remainder_->load(); }

 private:
  StreamReader reader_;
  std::shared_ptr<std::atomic<int64_t>> remainder_;
  std::optional<Batch> lookahead_;  // read to learn whether it is the last one before the last is handed out
  bool peeked_ = false;
};

}  // namespace

std::unique_ptr<BatchSource> indexed_source(std::vector<std::vector<int64_t>> batches, LoaderWorkers* workers,
                                            LoadBatch load, uint64_t base_seed, int64_t remainder) {
  return std::make_unique<IndexedSource>(std::move(batches), workers, std::move(load), base_seed, remainder);
}

std::unique_ptr<BatchSource> stream_source(std::function<std::optional<Batch>()> produce, bool background, int depth,
                                           int64_t skip, std::shared_ptr<std::atomic<int64_t>> remainder) {
  return std::make_unique<StreamSource>(std::move(produce), background, depth, skip, std::move(remainder));
}

}  // namespace accelerate::detail
