#include <accelerate/collate.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <functional>
#include <optional>

namespace accelerate {
namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

/// The samples' tensors of field `name`, each checked to exist.
std::vector<at::Tensor> field_of(const std::vector<Batch>& samples, const std::string& name) {
  std::vector<at::Tensor> out;
  out.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    ACCELERATE_CHECK(samples[i].contains(name), ConfigError, "collate: sample ", i, " of the batch has no field '",
                     name, "' that sample 0 has; every sample needs the same fields.");
    out.push_back(samples[i].at(name));
  }
  return out;
}

/// Every sample's tensor of `name` has sample 0's dtype (at::stack and copy_ would silently convert).
void check_dtypes(const std::vector<at::Tensor>& tensors, const std::string& name) {
  for (size_t i = 1; i < tensors.size(); ++i) {
    ACCELERATE_CHECK(tensors[i].scalar_type() == tensors[0].scalar_type(), ConfigError, "collate: field '", name,
                     "' is ", tensors[0].scalar_type(), " in sample 0 but ", tensors[i].scalar_type(), " in sample ", i,
                     "; give every sample the same dtype.");
  }
}

at::Tensor stack_field(const std::vector<at::Tensor>& tensors, const std::string& name) {
  check_dtypes(tensors, name);
  for (size_t i = 1; i < tensors.size(); ++i) {
    ACCELERATE_CHECK(tensors[i].sizes() == tensors[0].sizes(), ConfigError, "collate: field '", name, "' has shape ",
                     tensors[0].sizes(), " in sample 0 but ", tensors[i].sizes(), " in sample ", i,
                     "; pad variable-length fields (pad_collate) or give the loader a collate that does.");
  }
  return at::stack(tensors);
}

}  // namespace

Batch default_collate(const std::vector<Batch>& samples) {
  ACCELERATE_CHECK(!samples.empty(), ConfigError, "collate: no samples to collate.");
  Batch out;
  for (const auto& name : samples[0].names()) out[name] = stack_field(field_of(samples, name), name);
  return out;
}

namespace {

/// Pads `tensors` (each (L_i, ...)) along dim 0 to `length` with `pad`: (B, length, ...).
at::Tensor pad_field(const std::vector<at::Tensor>& tensors, const std::string& name, int64_t length, double pad,
                     bool left) {
  check_dtypes(tensors, name);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    ACCELERATE_CHECK(t.dim() == tensors[0].dim() && t.sizes().slice(1) == tensors[0].sizes().slice(1), ConfigError,
                     "pad_collate: field '", name, "' has shape ", tensors[0].sizes(), " in sample 0 but ", t.sizes(),
                     " in sample ", i, "; only dim 0 (the sequence length) may differ.");
  }
  std::vector<int64_t> shape = tensors[0].sizes().vec();
  shape.insert(shape.begin(), static_cast<int64_t>(tensors.size()));
  shape[1] = length;
  auto padded = at::full(shape, pad, tensors[0].options());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int64_t n = tensors[i].size(0);
    padded[static_cast<int64_t>(i)].narrow(0, left ? length - n : 0, n).copy_(tensors[i]);
  }
  return padded;
}

/// Dim 0 of each sample's tensor, or nullopt when one is a scalar.
std::optional<std::vector<int64_t>> lengths_of(const std::vector<at::Tensor>& tensors) {
  std::vector<int64_t> out;
  for (const auto& t : tensors) {
    if (t.dim() == 0) return std::nullopt;
    out.push_back(t.size(0));
  }
  return out;
}

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

}  // namespace

Collate pad_collate(PadOptions options) {
  ACCELERATE_CHECK(options.pad_to_multiple_of >= 1, ConfigError, "PadOptions::pad_to_multiple_of must be >= 1, got ",
                   options.pad_to_multiple_of, ".");
  return [options](const std::vector<Batch>& samples) {
    ACCELERATE_CHECK(!samples.empty(), ConfigError, "collate: no samples to collate.");
    for (size_t i = 1; i < samples.size(); ++i) {
      ACCELERATE_CHECK(samples[i].names() == samples[0].names(), ConfigError, "collate: sample ", i, " has the fields ",
                       join(samples[i].names()), " but sample 0 has ", join(samples[0].names()),
                       "; every sample needs the same fields.");
    }
    for (const auto& [name, value] : options.pad_values) {
      ACCELERATE_CHECK(samples[0].contains(name), ConfigError, "pad_collate: PadOptions::pad_values names '", name,
                       "', which the samples do not have (their fields: ", join(samples[0].names()), ").");
    }
    // The sequence: the mask field's lengths. Every field whose samples have exactly these lengths (labels,
    // token_type_ids, a mask the samples bring) is padded with it to one length; other fields whose lengths differ
    // are padded to their own longest; the rest (scalars, fixed-size fields) are stacked.
    std::optional<std::vector<int64_t>> sequence;
    if (samples[0].contains(options.mask_from)) sequence = lengths_of(field_of(samples, options.mask_from));
    const int64_t m = options.pad_to_multiple_of;
    const int64_t sequence_length = sequence ? round_up(*std::max_element(sequence->begin(), sequence->end()), m) : 0;
    Batch out;
    for (const auto& name : samples[0].names()) {
      const auto tensors = field_of(samples, name);
      const auto lengths = lengths_of(tensors);
      const auto it = options.pad_values.find(name);
      const double pad = it == options.pad_values.end() ? 0.0 : it->second;
      if (sequence && lengths == sequence) {
        out[name] = pad_field(tensors, name, sequence_length, pad, options.pad_left);
      } else if (lengths &&
                 std::adjacent_find(lengths->begin(), lengths->end(), std::not_equal_to<>()) != lengths->end()) {
        out[name] = pad_field(tensors, name, round_up(*std::max_element(lengths->begin(), lengths->end()), m), pad,
                              options.pad_left);
      } else {
        ACCELERATE_CHECK(
            lengths || std::all_of(tensors.begin(), tensors.end(), [](const at::Tensor& t) { return t.dim() == 0; }),
            ConfigError, "pad_collate: field '", name, "' is a scalar in some samples and a sequence in others.");
        out[name] = stack_field(tensors, name);
      }
    }
    if (options.mask_from.empty() || !out.contains(options.mask_from) || out.contains("attention_mask")) return out;
    const int64_t batch = static_cast<int64_t>(samples.size());
    if (!sequence) {  // the mask field is not a sequence: every position is real
      const auto& ids = out.at(options.mask_from);
      out["attention_mask"] = at::ones({batch, ids.dim() >= 2 ? ids.size(1) : 1}, at::kLong);
      return out;
    }
    auto mask = at::zeros({batch, sequence_length}, at::kLong);
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t n = (*sequence)[static_cast<size_t>(i)];
      mask[i].narrow(0, options.pad_left ? sequence_length - n : 0, n).fill_(1);
    }
    out["attention_mask"] = mask;
    return out;
  };
}

}  // namespace accelerate
