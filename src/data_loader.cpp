// DataLoader: epoch order, HF's batch sharding, background loading and the gradient state's end-of-data flag.
#include <accelerate/data_loader.hpp>

#include <accelerate/collectives.hpp>
#include <accelerate/error.hpp>
#include <accelerate/find_batch_size.hpp>
#include <accelerate/gradient_state.hpp>
#include <accelerate/process_state.hpp>

#include "detail/trace_range.hpp"
#include "detail/error_text.hpp"
#include "detail/device_copier.hpp"
#include "detail/internal_collectives.hpp"
#include "detail/loader_workers.hpp"
#include "detail/out_of_memory.hpp"
#include "detail/batch_source.hpp"
#include "detail/sharding.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace accelerate {

namespace detail {

std::vector<std::vector<int64_t>> make_batches(const std::vector<int64_t>& order, int64_t batch_size, bool drop_last) {
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    if (drop_last && static_cast<int64_t>(end - start) < batch_size) break;
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

namespace {

using Batches = std::vector<std::vector<int64_t>>;

// HF's BatchSamplerShard._iter_with_split.
Batches shard_split(const Batches& batches, int64_t batch_size, bool drop_last, const ShardOptions& s) {
  Batches out;
  const int64_t length = batch_size / s.num_processes;
  auto slice = [&](const std::vector<int64_t>& b) {
    const auto from = std::min<int64_t>(length * s.process_index, static_cast<int64_t>(b.size()));
    const auto to = std::min<int64_t>(length * (s.process_index + 1), static_cast<int64_t>(b.size()));
    return std::vector<int64_t>(b.begin() + from, b.begin() + to);
  };
  if (batches.empty()) return out;
  std::vector<int64_t> initial = batches.front();
  for (const auto& b : batches) {
    if (static_cast<int64_t>(b.size()) == batch_size) out.push_back(slice(b));
  }
  const auto& last = batches.back();
  if (!drop_last && static_cast<int64_t>(last.size()) < batch_size) {
    if (!s.even_batches) {
      if (static_cast<int64_t>(last.size()) > length * s.process_index) out.push_back(slice(last));
    } else {
      while (static_cast<int64_t>(initial.size()) < batch_size)
        initial.insert(initial.end(), initial.begin(), initial.end());
      auto completed = last;
      completed.insert(completed.end(), initial.begin(), initial.end());
      out.push_back(slice(completed));
    }
  }
  return out;
}

// HF's BatchSamplerShard._iter_with_no_split: batch idx belongs to rank idx % n; a round is released only when
// its last batch is full; with even_batches the last round is completed from the start of the epoch.
Batches shard_no_split(const Batches& batches, int64_t batch_size, bool drop_last, const ShardOptions& s) {
  Batches out;
  const int n = s.num_processes, rank = s.process_index;
  std::vector<int64_t> initial;
  std::optional<std::vector<int64_t>> to_yield;
  int64_t idx = 0;
  std::vector<int64_t> batch;
  for (idx = 0; idx < static_cast<int64_t>(batches.size()); ++idx) {
    batch = batches[idx];
    if (!drop_last && idx < n) initial.insert(initial.end(), batch.begin(), batch.end());
    if (idx % n == rank) to_yield = batch;
    if (idx % n == n - 1 && static_cast<int64_t>(batch.size()) == batch_size) {
      out.push_back(*to_yield);
      to_yield.reset();
    }
  }
  if (batches.empty()) return out;
  idx = static_cast<int64_t>(batches.size()) - 1;  // enumerate's last index
  if (drop_last || initial.empty()) return out;
  if (!s.even_batches) {
    if (to_yield && !to_yield->empty()) out.push_back(*to_yield);
    return out;
  }
  if (to_yield && !to_yield->empty() && static_cast<int64_t>(to_yield->size()) == batch_size) out.push_back(*to_yield);
  while (static_cast<int64_t>(initial.size()) < n * batch_size)
    initial.insert(initial.end(), initial.begin(), initial.end());
  if (static_cast<int64_t>(batch.size()) == batch_size) {
    batch.clear();
    ++idx;
  }
  size_t cycle = 0;
  while (idx % n != 0 || !batch.empty()) {
    const size_t end = cycle + static_cast<size_t>(batch_size) - batch.size();
    batch.insert(batch.end(), initial.begin() + static_cast<std::ptrdiff_t>(std::min(cycle, initial.size())),
                 initial.begin() + static_cast<std::ptrdiff_t>(std::min(end, initial.size())));
    if (idx % n == rank) out.push_back(batch);
    cycle = end;
    batch.clear();
    ++idx;
  }
  return out;
}

}  // namespace

Batches shard_batches(const Batches& batches, int64_t batch_size, bool drop_last, const ShardOptions& shard) {
  if (shard.num_processes == 1) return batches;
  return shard.split_batches ? shard_split(batches, batch_size, drop_last, shard)
                             : shard_no_split(batches, batch_size, drop_last, shard);
}

std::vector<int64_t> epoch_order(int64_t size, bool shuffle, at::Generator* generator) {
  if (!shuffle) {
    std::vector<int64_t> order(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i) order[static_cast<size_t>(i)] = i;
    return order;
  }
  auto perm = at::randperm(size, *generator, at::TensorOptions().dtype(at::kLong));
  return std::vector<int64_t>(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + size);
}

}  // namespace detail

using detail::epoch_order;
using detail::make_batches;
using detail::shard_batches;
using Batches = std::vector<std::vector<int64_t>>;

// ---- DataLoader ---------------------------------------------------------------------------------------------

namespace {
/// A dataset's error with the loader's context: our own errors keep their type (a dataset's ConfigError or
/// CheckpointError stays one); anything else becomes a DataError.
[[noreturn]] void rethrow_with_message(const std::exception& e, const std::string& message) {
  // find_executable_batch_size must still see an allocator's failure as out of memory (HF's does).
  if (is_out_of_memory(e)) throw detail::DataOutOfMemory(message);
  if (dynamic_cast<const ConfigError*>(&e)) throw ConfigError(message);
  if (dynamic_cast<const CheckpointError*>(&e)) throw CheckpointError(message);
  throw DataError(message);
}
}  // namespace

DataLoader::DataLoader(std::shared_ptr<IterableDataset> stream, DataLoaderOptions options)
    : DataLoader(std::shared_ptr<Dataset>(), options, std::move(stream)) {}

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options)
    : DataLoader(std::move(dataset), options, nullptr) {}

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options,
                       std::shared_ptr<IterableDataset> stream)
    : dataset_(std::move(dataset)), options_(options), stream_(std::move(stream)) {
  ACCELERATE_CHECK(dataset_ || stream_, ConfigError, "DataLoader: the dataset is null.");
  ACCELERATE_CHECK(!stream_ || !options_.shuffle, ConfigError,
                   "DataLoader: shuffle=true over an IterableDataset: a stream cannot be reordered by the loader; "
                   "shuffle inside the stream (seeded from the epoch start() receives), as with PyTorch.");
  ACCELERATE_CHECK(options_.batch_size >= 1, ConfigError, "DataLoader: batch_size must be >= 1, got ",
                   options_.batch_size, ".");
  ACCELERATE_CHECK(options_.num_workers >= 0, ConfigError, "DataLoader: num_workers must be >= 0, got ",
                   options_.num_workers, ".");
  ACCELERATE_CHECK(options_.prefetch_factor >= 1, ConfigError, "DataLoader: prefetch_factor must be >= 1, got ",
                   options_.prefetch_factor, ".");
  // As torch's RandomSampler without a generator: seed a private one from one draw of the global RNG.
  const int64_t seed = options_.seed ? *options_.seed : at::empty({}, at::kLong).random_().item<int64_t>();
  generator_ = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
}

DataLoader::~DataLoader() = default;

void DataLoader::prepare(const ProcessState& state, GradientState& gradient_state, ShardOptions shard,
                         c10::Device device) {
  const int64_t n = stream_ ? 1 : dataset_->size();  // a stream's length is unknown until it ends
  ACCELERATE_CHECK(n > 0, ConfigError, "prepare(data loader): the dataset is empty; there is nothing to train on.");
  // Fewer samples than processes is served as HF does: even_batches completes each round from the start of the
  // epoch, and gather_for_metrics drops the repeats (evaluating a handful of samples on 2 GPUs works).
  ACCELERATE_CHECK(!shard.split_batches || options_.batch_size % shard.num_processes == 0, ConfigError,
                   "prepare(data loader): with split_batches the batch size (", options_.batch_size,
                   ") must be a multiple of the number of processes (", shard.num_processes, ").");
  state_ = &state;
  gradient_state_ = &gradient_state;
  shard_ = shard;
  device_ = device;
}

int64_t DataLoader::total_batch_size() const {
  return shard_.split_batches ? options_.batch_size : options_.batch_size * shard_.num_processes;
}

int64_t DataLoader::size() const {
  ACCELERATE_CHECK(!stream_, ConfigError,
                   "DataLoader::size(): a loader over an IterableDataset has no length (as len() of PyTorch's).");
  const int64_t n = dataset_->size(), bs = options_.batch_size, world = shard_.num_processes;
  const int64_t batches = options_.drop_last ? n / bs : (n + bs - 1) / bs;
  int64_t len;
  if (world == 1 || shard_.split_batches)
    len = batches;
  else if (batches % world == 0 || options_.drop_last)
    len = batches / world;
  else if (shard_.even_batches)
    len = batches / world + 1;
  else
    len = batches / world + (shard_.process_index < batches % world ? 1 : 0);
  return std::max<int64_t>(0, len - skip_);
}

void DataLoader::skip_first_batches(int64_t num_batches) {
  ACCELERATE_CHECK(num_batches >= 0, ConfigError, "skip_first_batches: num_batches must be >= 0, got ", num_batches,
                   ".");
  skip_ = num_batches;
}

Batches DataLoader::epoch_indices(bool synchronise) {
  if (options_.seed) {
    std::lock_guard<std::mutex> lock(generator_.mutex());
    generator_.set_current_seed(static_cast<uint64_t>(*options_.seed + epoch_));
  } else if (options_.shuffle && synchronise && state_ && state_->num_processes() > 1) {
    // HF's default rng_types=["generator"]: every rank takes rank 0's generator, so all draw one permutation.
    // An internal collective: the generator state is a CPU tensor whatever the job's device, so it goes through
    // Gloo and skips the checks debug mode makes on the user's collectives.
    at::Tensor rng = generator_.get_state();
    detail::broadcast_internal(*state_, rng, 0, "data loader (shuffle order from rank 0)");
    generator_.set_state(rng);
  }
  if (synchronise) epoch_start_generator_ = generator_.get_state();
  auto batches = make_batches(epoch_order(dataset_->size(), options_.shuffle, &generator_), options_.batch_size,
                              options_.drop_last);
  auto mine = shard_batches(batches, options_.batch_size, options_.drop_last, shard_);
  mine.erase(mine.begin(), mine.begin() + std::min<std::ptrdiff_t>(skip_, static_cast<std::ptrdiff_t>(mine.size())));
  return mine;
}

Batches DataLoader::peek_epoch_indices() {
  const auto saved = generator_.get_state();
  auto out = epoch_indices(/*synchronise=*/false);
  generator_.set_state(saved);
  return out;
}

DataLoader::Position DataLoader::position() const {
  if (in_epoch_) return {epoch_, skipped_this_epoch_ + position_, epoch_start_generator_};
  return {epoch_, skip_, generator_.get_state()};
}

void DataLoader::restore(const Position& p) {
  ACCELERATE_CHECK(!in_epoch_, StateError, "DataLoader::restore: the loader is in the middle of an epoch.");
  epoch_ = p.epoch;
  skip_ = p.batches;
  if (p.generator_state.defined()) generator_.set_state(p.generator_state);
}

DataLoader::Iterator DataLoader::begin() {
  if (in_epoch_) finish_epoch();  // the previous loop ended early
  skipped_this_epoch_ = skip_;
  // The order first: it advances the shuffle generator, from which the epoch's seed is then drawn.
  auto batches = stream_ ? Batches{} : epoch_indices(/*synchronise=*/true);
  if (stream_) epoch_start_generator_ = generator_.get_state();  // no order to draw, but a checkpoint records it
  epoch_seed_ = epoch_base_seed();
  position_ = 0;
  copier_ =
      std::make_unique<detail::DeviceCopier>(device_, options_.pin_memory && device_.is_cuda(), options_.pin_memory);
  source_ = stream_ ? stream_epoch() : indexed_epoch(std::move(batches));
  in_epoch_ = true;
  if (gradient_state_) gradient_state_->begin_loader(this, source_->remainder());
  Iterator it(this);
  if (!advance(it.current_)) {
    finish_epoch();
    return end();
  }
  return it;
}

std::unique_ptr<detail::BatchSource> DataLoader::indexed_epoch(Batches batches) {
  if (options_.num_workers > 0 && !workers_) {
    workers_ = std::make_unique<detail::LoaderWorkers>(options_.num_workers, options_.prefetch_factor);
  }
  const int64_t remainder = options_.drop_last ? -1 : dataset_->size() % total_batch_size();
  return detail::indexed_source(
      std::move(batches), workers_.get(),
      [this, epoch = epoch_, first = skipped_this_epoch_, seed = epoch_seed_](int64_t ordinal,
                                                                              const std::vector<int64_t>& indices) {
        return load_batch(indices, epoch, first + ordinal, seed);
      },
      epoch_seed_, remainder);
}

std::unique_ptr<detail::BatchSource> DataLoader::stream_epoch() {
  stream_->start(epoch_);
  auto shard = std::make_shared<detail::IterableShard<Batch>>(options_.batch_size, options_.drop_last, shard_);
  auto remainder = std::make_shared<std::atomic<int64_t>>(-1);
  auto read = std::make_shared<int64_t>(0);  // samples read from the stream, and batches made
  auto made = std::make_shared<int64_t>(0);
  auto done = std::make_shared<bool>(false);
  // Runs on the reading thread; captures what it needs by value so that nothing of the loader's epoch state is
  // shared with it.
  auto produce = [this, shard, read, made, done, remainder, epoch = epoch_,
                  seed = epoch_seed_]() -> std::optional<Batch> {
    detail::BatchSeedScope seeded(seed, *made);
    while (!*done) {
      std::optional<Batch> sample;
      try {
        sample = stream_->next();
      } catch (const std::exception& e) {
        const std::string message =
            detail::concat("data loader: rank ", state_ ? state_->process_index() : 0, ": reading sample ", *read,
                           " of the stream (epoch ", epoch, ") failed: ", detail::message_of(e));
        rethrow_with_message(e, message);
      }
      std::vector<Batch> slice;
      if (sample) {
        ++*read;
        slice = shard->push(std::move(*sample));
      } else {
        *done = true;
        int64_t real = 0;
        slice = shard->finish(&real);
        remainder->store(options_.drop_last ? -1 : real);
      }
      if (slice.empty()) continue;
      ++*made;
      return ready_for_copy(collate(slice));
    }
    return std::nullopt;
  };
  return detail::stream_source(produce, options_.num_workers > 0, options_.prefetch_factor, skip_, remainder);
}

namespace {
/// SplitMix64's finaliser: nearby inputs (epochs 0, 1, 2; ranks 0, 1) give unrelated seeds.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t DataLoader::epoch_base_seed() const {
  // Drawn from a copy of the shuffle generator, so the epoch's order (and the next epoch's) is what it would be
  // without workers, and a resume draws it again. That draw alone repeats where the generator does not move (an
  // unshuffled loader's never advances) and is shared by every rank (a shuffled one is rank 0's): mixed with the
  // epoch and the rank, the draws differ each epoch, as torch's base seed does, and between ranks, as HF's
  // device-specific seeding and torchtune's seed + rank make them.
  const auto draw = static_cast<uint64_t>(at::empty({}, at::kLong).random_(generator_.clone()).item<int64_t>());
  return mix(mix(draw ^ mix(static_cast<uint64_t>(epoch_))) ^ static_cast<uint64_t>(shard_.process_index));
}

Batch DataLoader::load_batch(const std::vector<int64_t>& indices, int64_t epoch, int64_t in_epoch,
                             uint64_t seed) const {
  detail::BatchSeedScope seeded(seed, in_epoch);
  try {
    Batch batch;
    if (options_.collate) {
      std::vector<Batch> samples;
      samples.reserve(indices.size());
      for (auto i : indices) samples.push_back(dataset_->get(i));
      batch = options_.collate(samples);
    } else {
      batch = dataset_->get_batch(indices);
    }
    return ready_for_copy(std::move(batch));
  } catch (const std::exception& e) {
    // Name the sample: a batch-level get_batch or collate hides which one failed, so retry them one by one (not
    // after running out of memory: loading them again would only do that again).
    std::string culprit = detail::concat("samples ", indices.front(), "..", indices.back());
    for (auto i : is_out_of_memory(e) ? std::vector<int64_t>{} : indices) {
      try {
        dataset_->get(i);
      } catch (const std::exception&) {
        culprit = detail::concat("sample ", i);
        break;
      }
    }
    const auto* worker = get_worker_info();
    const std::string message =
        detail::concat("data loader: rank ", state_ ? state_->process_index() : 0, ": loading ", culprit, " (batch ",
                       in_epoch, " of epoch ", epoch, worker ? detail::concat(", worker ", worker->id) : std::string(),
                       ") failed: ", detail::message_of(e));
    rethrow_with_message(e, message);
  }
}

Batch DataLoader::collate(std::vector<Batch>& samples) const {
  return options_.collate ? options_.collate(samples) : default_collate(samples);
}

Batch DataLoader::ready_for_copy(Batch batch) const {
  // Pinned host memory is what lets the copy overlap (and not for a CPU run on a machine that has a GPU).
  if (!options_.pin_memory || !device_.is_cuda()) return batch;
  return apply(batch, [](const at::Tensor& t) { return t.is_pinned() ? t : t.pin_memory(); });
}

bool DataLoader::advance(Batch& out) {
  if (!copier_->pending()) {
    if (!source_->has_next()) return false;
    copier_->start(source_->next());
  }
  const bool more = source_->has_next();  // a stream reads its next batch here, to flag the last one
  out = copier_->take();
  ++position_;
  if (more && copier_->overlaps()) {  // copied while this one computes
    try {
      copier_->start(source_->next());
    } catch (...) {  // the next advance() reports it: this batch is still handed out, as without overlap
      copier_->fail(std::current_exception());
    }
  }
  // HF looks one batch ahead; so do we, and the flag is set before the last batch is handed out.
  if (!more && gradient_state_) {
    gradient_state_->set_remainder(this, source_->remainder());
    gradient_state_->set_end_of_dataloader(this);
  }
  return true;
}

void DataLoader::finish_epoch() {
  in_epoch_ = false;
  copier_.reset();
  source_.reset();  // before the workers it may use
  if (!options_.persistent_workers) workers_.reset();
  if (gradient_state_) gradient_state_->end_loader(this);
  ++epoch_;
  skip_ = 0;
}

DataLoader::Iterator& DataLoader::Iterator::operator=(Iterator&& other) noexcept {
  if (this != &other) {
    if (loader_) loader_->finish_epoch();
    loader_ = std::exchange(other.loader_, nullptr);
    current_ = std::move(other.current_);
  }
  return *this;
}

DataLoader::Iterator::~Iterator() {
  if (loader_ && loader_->in_epoch_) loader_->finish_epoch();  // left with `break`
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  detail::TraceRange range("accelerate::next_batch");  // the wait for the next batch
  if (!loader_->advance(current_)) {
    loader_->finish_epoch();
    loader_ = nullptr;
  }
  return *this;
}

}  // namespace accelerate
