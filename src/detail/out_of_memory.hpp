// Internal: find_executable_batch_size's agreement check, shared by the search and Accelerator::backward.
#pragma once

#include <cstdint>

#include <accelerate/error.hpp>

namespace accelerate {
class ProcessState;
}

namespace accelerate::detail {

/// Thrown by a sync backward() during a batch-size search when another process ran out of memory: the attempt
/// ends on every process.
class PeerOutOfMemory : public Error {
 public:
  using Error::Error;
};

/// An out-of-memory error in a dataset's get or a collate, with the loader's context (which rank, sample, batch):
/// still a DataError for a program that catches those, and still out of memory for find_executable_batch_size.
class DataOutOfMemory : public DataError {
 public:
  using DataError::DataError;
};

/// The number of processes that ran out of memory since the last check (`here`: this one did): one all-reduce.
int64_t out_of_memory_count(const ProcessState& state, bool here);

}  // namespace accelerate::detail
