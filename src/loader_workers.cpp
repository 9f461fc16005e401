#include "detail/loader_workers.hpp"

#include <accelerate/error.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

namespace accelerate {
namespace {
thread_local const WorkerInfo* tls_worker = nullptr;
thread_local at::Generator tls_generator;  // undefined outside a batch
}  // namespace

const WorkerInfo* get_worker_info() { return tls_worker; }

at::Generator data_generator() {
  return tls_generator.defined() ? tls_generator : at::detail::getDefaultCPUGenerator();
}

namespace detail {

void set_worker_info(const WorkerInfo* info) { tls_worker = info; }

BatchSeedScope::BatchSeedScope(uint64_t base_seed, int64_t ordinal)
    : had_previous_(tls_generator.defined()), previous_(tls_generator) {
  // A different, reproducible stream per batch: the golden-ratio step spreads consecutive ordinals apart.
  const uint64_t seed = base_seed + static_cast<uint64_t>(ordinal + 1) * 0x9E3779B97F4A7C15ull;
  tls_generator = at::make_generator<at::CPUGeneratorImpl>(seed);
}

BatchSeedScope::~BatchSeedScope() { tls_generator = had_previous_ ? previous_ : at::Generator(); }

LoaderWorkers::LoaderWorkers(int num_workers, int prefetch_factor)
    : num_workers_(num_workers), prefetch_factor_(prefetch_factor), slots_(static_cast<size_t>(num_workers)) {
  for (int w = 0; w < num_workers_; ++w) threads_.emplace_back([this, w] { run(w); });
}

LoaderWorkers::~LoaderWorkers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
}

void LoaderWorkers::start(std::vector<std::vector<int64_t>> batches, LoadBatch load, uint64_t base_seed) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batches_ = std::move(batches);
    load_ = std::move(load);
    base_seed_ = base_seed;
    ++generation_;
    next_ = 0;
    for (auto& slot : slots_) slot = Slot{};
  }
  changed_.notify_all();
}

Batch LoaderWorkers::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  ACCELERATE_CHECK(next_ < static_cast<int64_t>(batches_.size()), StateError, "data loader: no batch left.");
  auto& slot = slots_[static_cast<size_t>(next_ % num_workers_)];
  changed_.wait(lock, [&] { return !slot.ready.empty() || slot.error; });
  if (slot.ready.empty()) std::rethrow_exception(slot.error);
  Batch b = std::move(slot.ready.front());
  slot.ready.pop_front();
  ++next_;
  changed_.notify_all();
  return b;
}

void LoaderWorkers::run(int worker) {
  WorkerInfo info{.id = worker, .num_workers = num_workers_};
  set_worker_info(&info);
  uint64_t generation = 0;
  int64_t ordinal = worker;  // this worker's next batch
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    auto& slot = slots_[static_cast<size_t>(worker)];
    changed_.wait(lock, [&] {
      if (stop_ || generation != generation_) return true;
      return !slot.error && ordinal < static_cast<int64_t>(batches_.size()) &&
             static_cast<int>(slot.ready.size()) < prefetch_factor_;
    });
    if (stop_) return;
    if (generation != generation_) {  // a new epoch
      generation = generation_;
      ordinal = worker;
      continue;
    }
    const auto indices = batches_[static_cast<size_t>(ordinal)];
    const auto load = load_;
    info.seed = base_seed_ + static_cast<uint64_t>(worker);
    lock.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      batch = load(ordinal, indices);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (generation != generation_ || stop_) continue;  // the epoch ended meanwhile: drop it
    if (error) {
      slot.error = error;
    } else {
      slot.ready.push_back(std::move(batch));
    }
    ordinal += num_workers_;
    changed_.notify_all();
  }
}

}  // namespace detail
}  // namespace accelerate
