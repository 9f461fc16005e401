// A batch (or one sample) as named tensors: HF's dict batches ({"input_ids", "attention_mask", "labels"}) and
// torch::data's (data, target) pair in one type, and HF's recursively_apply / send_to_device over it.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace accelerate {

/// Named tensors. The (input, label) pair that TensorDataset and torch::data datasets give is the fields
/// "data" and "target", reachable as `batch.data` and `batch.target` too (torch::data::Example's spelling).
/// Fields are kept in name order, so every rank visits them in the same order (collectives rely on it).
class Batch {
 public:
  Batch() = default;
  /// {"data": data, "target": target}; an undefined tensor is no field.
  Batch(at::Tensor data, at::Tensor target);
  /// Any fields: Batch{{"input_ids", ids}, {"labels", labels}}.
  Batch(std::initializer_list<std::pair<const std::string, at::Tensor>> fields);

  /// The field `name`, created (undefined) when missing, as std::map's operator[].
  at::Tensor& operator[](const std::string& name);
  /// The field `name`; ConfigError naming the fields there are when it is missing.
  const at::Tensor& at(const std::string& name) const;
  bool contains(const std::string& name) const;
  /// The names of the defined fields, in name order.
  std::vector<std::string> names() const;
  /// Number of defined fields.
  size_t size() const { return names().size(); }
  bool empty() const { return size() == 0; }
  /// The defined fields in name order, for `for (auto& [name, tensor] : batch.items())`.
  std::vector<std::pair<std::string, at::Tensor>> items() const;

  /// torch::data::Example's fields, kept as members so that code written for it (`batch.data`) ports unchanged.
  at::Tensor data, target;

 private:
  std::map<std::string, at::Tensor> named_;  // every field but data and target
};

/// A new batch with `f` applied to each defined field, in name order (HF's recursively_apply).
Batch apply(const Batch& batch, const std::function<at::Tensor(const at::Tensor&)>& f);

/// Every field moved to `device` (HF's send_to_device). `non_blocking` copies from pinned memory asynchronously on
/// CUDA (the copy overlaps the computation queued before it).
Batch send_to_device(const Batch& batch, c10::Device device, bool non_blocking = false);
at::Tensor send_to_device(const at::Tensor& tensor, c10::Device device, bool non_blocking = false);

}  // namespace accelerate
