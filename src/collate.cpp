#include <accelerate/collate.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>

namespace accelerate {
namespace {

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

Collate pad_collate(PadOptions options) {
  ACCELERATE_CHECK(options.pad_to_multiple_of >= 1, ConfigError, "PadOptions::pad_to_multiple_of must be >= 1, got ",
                   options.pad_to_multiple_of, ".");
  return [options](const std::vector<Batch>& samples) {
    ACCELERATE_CHECK(!samples.empty(), ConfigError, "collate: no samples to collate.");
    Batch out;
    for (const auto& name : samples[0].names()) {
      const auto tensors = field_of(samples, name);
      const bool variable = tensors[0].dim() >= 1 && std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) {
                              return t.dim() != tensors[0].dim() || t.size(0) != tensors[0].size(0);
                            });
      // Only sequences are padded: fields whose lengths differ, and the field the mask comes from (rounded up to
      // pad_to_multiple_of); scalars and fixed-size fields are stacked.
      if (!variable && name != options.mask_from) {
        out[name] = stack_field(tensors, name);
        continue;
      }
      check_dtypes(tensors, name);
      int64_t longest = 0;
      for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = tensors[i];
        ACCELERATE_CHECK(t.dim() >= 1, ConfigError, "pad_collate: field '", name,
                         "' is a scalar in some samples and a sequence in others.");
        ACCELERATE_CHECK(t.dim() == tensors[0].dim() && t.sizes().slice(1) == tensors[0].sizes().slice(1), ConfigError,
                         "pad_collate: field '", name, "' has shape ", tensors[0].sizes(), " in sample 0 but ",
                         t.sizes(), " in sample ", i, "; only dim 0 (the sequence length) may differ.");
        longest = std::max(longest, t.size(0));
      }
      const int64_t m = options.pad_to_multiple_of;
      longest = (longest + m - 1) / m * m;
      auto it = options.pad_values.find(name);
      const double pad = it == options.pad_values.end() ? 0.0 : it->second;
      std::vector<int64_t> shape = tensors[0].sizes().vec();
      shape.insert(shape.begin(), static_cast<int64_t>(tensors.size()));
      shape[1] = longest;
      auto padded = at::full(shape, pad, tensors[0].options());
      for (size_t i = 0; i < tensors.size(); ++i) {
        const int64_t n = tensors[i].size(0);
        padded[static_cast<int64_t>(i)].narrow(0, options.pad_left ? longest - n : 0, n).copy_(tensors[i]);
      }
      out[name] = padded;
      // A mask the samples bring themselves is padded (with 0) like any field and kept.
      if (name != options.mask_from || samples[0].contains("attention_mask")) continue;
      auto mask = at::zeros({static_cast<int64_t>(tensors.size()), longest}, at::kLong);
      for (size_t i = 0; i < tensors.size(); ++i) {
        const int64_t n = tensors[i].size(0);
        mask[static_cast<int64_t>(i)].narrow(0, options.pad_left ? longest - n : 0, n).fill_(1);
      }
      out["attention_mask"] = mask;
    }
    if (!options.mask_from.empty() && !out.contains("attention_mask") && out.contains(options.mask_from)) {
      const auto& ids = out.at(options.mask_from);
      out["attention_mask"] = at::ones({ids.size(0), ids.dim() >= 2 ? ids.size(1) : 1}, at::kLong);
    }
    return out;
  };
}

}  // namespace accelerate
