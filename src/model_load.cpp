// load_checkpoint_in_model: every checkpoint tensor is mapped to a model tensor and checked (names, shapes,
// dtypes) from the memory-mapped files first; only a checkpoint that fits is copied, so a failed load changes
// nothing.
#include <accelerate/model_io.hpp>

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>
#include <set>
#include <sstream>
#include <torch/nn/module.h>

#include "detail/model_files.hpp"
#include "detail/model_state.hpp"
#include "detail/sharded_units.hpp"
#include "detail/tensor_pieces.hpp"

namespace accelerate {
namespace fs = std::filesystem;
using detail::concat;

namespace {

/// One checkpoint tensor bound for one model tensor.
struct Copy {
  std::string model_key;
  at::Tensor source;  // a view of the file (transform applied), cast on copy when LoadOptions::dtype asks
};

/// What the checks found; nothing has been copied yet.
struct Plan {
  std::vector<Copy> copies;
  LoadResult result;
  std::vector<std::string> problems;  // fatal whatever `strict` says
};

std::string describe(const at::Tensor& t) { return concat(t.scalar_type(), t.sizes()); }

/// The model key of checkpoint key `key`, or nullopt when the options skip it.
std::optional<std::string> model_key_of(const std::string& key, const LoadOptions& options) {
  const auto renamed = options.rename.find(key);
  std::string out = renamed == options.rename.end() ? key : renamed->second;
  if (options.rename_fn) return options.rename_fn(out);
  return out;
}

/// The dtype the model's tensor has once the load's dtype conversion is applied.
c10::ScalarType loaded_dtype(const at::Tensor& target, const LoadOptions& options) {
  return options.dtype && at::isFloatingType(target.scalar_type()) ? *options.dtype : target.scalar_type();
}

/// Checks one checkpoint tensor against its model tensor; adds it to the plan or a problem.
void check_tensor(const std::string& key, const fs::path& file, const std::string& model_key, const at::Tensor& target,
                  const LoadOptions& options, detail::OpenFiles& files, Plan& plan) {
  const auto& opened = files.at(file);
  if (!opened.contains(key)) {
    plan.problems.push_back(
        concat("'", key, "': the index puts it in ", file.filename().string(), ", which does not have it"));
    return;
  }
  at::Tensor source = opened.get(key);
  if (options.transform) source = options.transform(model_key, source);
  const auto where = key == model_key ? concat("'", key, "'") : concat("'", model_key, "' (checkpoint '", key, "')");
  if (source.sizes() != target.sizes()) {
    plan.problems.push_back(concat(where, " in ", file.filename().string(), " is ", describe(source),
                                   " but the model's is ", describe(target)));
    return;
  }
  const auto wanted = loaded_dtype(target, options);
  const bool castable = options.dtype && at::isFloatingType(source.scalar_type()) && at::isFloatingType(wanted);
  if (source.scalar_type() != wanted && !castable) {
    plan.problems.push_back(concat(where, " in ", file.filename().string(), " is ", describe(source),
                                   " but the model's is ", wanted, target.sizes(),
                                   options.dtype ? "" : " (LoadOptions::dtype casts floating-point tensors)"));
    return;
  }
  plan.copies.push_back({model_key, source});
}

Plan plan_load(torch::nn::Module& model, const fs::path& path, const LoadOptions& options, detail::OpenFiles& files) {
  const auto locations = detail::checkpoint_tensor_files(path, files);
  const auto targets = detail::model_state(model);
  Plan plan;
  std::map<std::string, std::string> claimed;  // model key -> the checkpoint key that fills it
  for (const auto& [key, file] : locations) {
    const auto model_key = model_key_of(key, options);
    if (!model_key) continue;
    const auto target = targets.find(*model_key);
    if (target == targets.end()) {
      plan.result.unexpected_keys.push_back(*model_key);
      continue;
    }
    if (const auto [it, fresh] = claimed.emplace(*model_key, key); !fresh) {
      plan.problems.push_back(
          concat("checkpoint tensors '", it->second, "' and '", key, "' are both renamed to '", *model_key, "'"));
      continue;
    }
    check_tensor(key, file, *model_key, target->second, options, files, plan);
  }
  for (const auto& [name, _] : targets) {
    if (!claimed.count(name)) plan.result.missing_keys.push_back(name);
  }
  std::sort(plan.result.unexpected_keys.begin(), plan.result.unexpected_keys.end());
  return plan;
}

/// "'a', 'b', 'c' and 7 more": long lists (a model of another architecture) stay readable.
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 12;
  std::ostringstream out;
  for (size_t i = 0; i < std::min(names.size(), kShown); ++i) out << (i ? ", '" : "'") << names[i] << "'";
  if (names.size() > kShown) out << " and " << names.size() - kShown << " more";
  return out.str();
}

/// `what`: the call and the files ("load_checkpoint_in_model: <path>").
void refuse_unless_it_fits(const Plan& plan, const std::string& what, const LoadOptions& options) {
  std::vector<std::string> lines = plan.problems;
  const auto& r = plan.result;
  if (options.strict && !r.missing_keys.empty()) {
    lines.push_back(concat("missing (the model needs them, the checkpoint has none): ", name_list(r.missing_keys)));
  }
  if (options.strict && !r.unexpected_keys.empty()) {
    lines.push_back(
        concat("unexpected (the model has no such tensor: the weights of another model, or keys that "
               "LoadOptions::rename / rename_fn should map): ",
               name_list(r.unexpected_keys)));
  }
  if (lines.empty()) return;
  std::string message = concat(what, " does not fit the model; nothing was loaded:");
  for (const auto& line : lines) message += "\n  - " + line;
  if (options.strict && plan.problems.empty()) {
    message += "\n(LoadOptions::strict = false loads the tensors that match and returns the others by name.)";
  }
  throw CheckpointError(message);
}

/// What LoadOptions::dtype and device make of `t`'s dtype and device.
at::TensorOptions converted(const at::Tensor& t, const LoadOptions& options) {
  auto wanted = t.options();
  if (options.dtype && at::isFloatingType(t.scalar_type())) wanted = wanted.dtype(*options.dtype);
  if (options.device) wanted = wanted.device(*options.device);
  return wanted;
}

bool changes(const at::Tensor& t, const LoadOptions& options) {
  const auto wanted = converted(t, options);
  return wanted.dtype() != t.dtype() || wanted.device() != t.device();
}

/// The model's floating-point tensors to `dtype` and everything to `device`, in place: set_data keeps each
/// parameter the object an optimizer may already hold.
void convert_model(torch::nn::Module& model, const LoadOptions& options) {
  if (!options.dtype && !options.device) return;
  auto convert = [&](at::Tensor t) {
    if (changes(t, options)) t.set_data(t.detach().to(converted(t, options)));
  };
  for (const auto& p : model.named_parameters()) convert(p.value());
  for (const auto& b : model.named_buffers()) convert(b.value());
}

/// The parameters that the plan fills and that have no weights (init_empty_weights) outside a ZeRO-3 unit get
/// their memory now: loading is how such a model gets its weights before prepare.
void give_weights(torch::nn::Module& model, const Plan& plan, const std::vector<detail::ShardedUnit*>& units) {
  std::set<std::string> filled;
  for (const auto& copy : plan.copies) filled.insert(copy.model_key);
  for (auto& p : model.named_parameters()) {
    auto param = p.value();
    if (!filled.count(p.key()) || !detail::has_no_weights(param)) continue;
    const auto alias = param.detach();
    const bool sharded = std::any_of(units.begin(), units.end(), [&](auto* u) { return u->holds(alias); });
    if (!sharded) param.set_data(at::empty(param.sizes(), param.options()));
  }
}

}  // namespace

void init_empty_weights(torch::nn::Module& module) {
  // The meta device would be the natural place, but set_data cannot move a CPU tensor there: each parameter keeps
  // its device and gets a storage without bytes, whose every access throws.
  for (auto p : module.parameters()) {
    if (detail::has_no_weights(p)) continue;
    auto empty = at::empty(p.sizes(), p.options());  // never written: its pages are never resident
    auto* storage = empty.storage().unsafeGetStorageImpl();
    storage->reset();
    storage->release_data_and_set_meta_custom_data_ptr_error_msg_(
        "this parameter has no weights yet: its module was built through accelerate::init_empty_weights. ZeRO "
        "stage 3 gives each process its shard (rank 0's weights, or load_checkpoint_in_model after prepare).");
    p.set_data(empty);
  }
}

LoadResult load_checkpoint_in_model(torch::nn::Module& model, const std::string& path, const LoadOptions& options) {
  const auto units = detail::units_of(model);
  if (!units.empty()) {
    const auto params = model.parameters();
    ACCELERATE_CHECK(
        std::none_of(params.begin(), params.end(), [&](const at::Tensor& p) { return changes(p, options); }),
        ConfigError,
        "load_checkpoint_in_model: LoadOptions::dtype or device would convert the model, but it is "
        "prepared at ZeRO stage 3 (its units' parameters are shards): convert it before prepare.");
  }
  detail::OpenFiles files;
  Plan plan = plan_load(model, path, options, files);
  refuse_unless_it_fits(plan, "load_checkpoint_in_model: " + path, options);
  at::NoGradGuard no_grad;
  convert_model(model, options);
  give_weights(model, plan, units);
  auto targets = detail::model_state(model);
  for (const auto& copy : plan.copies) {
    const auto& target = targets.at(copy.model_key);
    // Stage 3: a unit's parameter takes this process's slice into its shard (only that slice is read).
    const bool sliced = std::any_of(units.begin(), units.end(), [&](auto* u) {
      return u->load_slice(
          target, [&](int64_t begin, int64_t length) { return copy.source.reshape(-1).narrow(0, begin, length); });
    });
    if (!sliced) target.copy_(copy.source);
  }
  return std::move(plan.result);
}

namespace detail {

void load_model_state(torch::nn::Module& model, const TensorSource& source, const std::string& where) {
  const auto targets = model_state(model);
  Plan plan;  // every name, shape and dtype checked before anything is copied
  for (const auto& name : source.names()) {
    if (!targets.count(name)) plan.result.unexpected_keys.push_back(name);
  }
  for (const auto& [name, target] : targets) {
    if (!source.contains(name)) {
      plan.result.missing_keys.push_back(name);
    } else if (source.shape(name) != target.sizes().vec() || source.dtype(name) != target.scalar_type()) {
      plan.problems.push_back(concat("'", name, "' is ", source.dtype(name), c10::IntArrayRef(source.shape(name)),
                                     " but the model's is ", describe(target)));
    }
  }
  refuse_unless_it_fits(plan, where, LoadOptions{});
  const auto units = units_of(model);
  at::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    auto read = [&](int64_t begin, int64_t length) { return source.read(name, begin, length); };
    const bool sliced = std::any_of(units.begin(), units.end(), [&](auto* u) { return u->load_slice(target, read); });
    if (!sliced) target.copy_(source.read_whole(name));
  }
}

}  // namespace detail
}  // namespace accelerate
