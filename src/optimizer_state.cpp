// Optimizer state without pickle: one visitor per torch::optim optimizer lists its hyper-parameters and its
// per-parameter state fields once; saving and loading both walk that list, so they cannot drift apart.
#include "detail/optimizer_state.hpp"

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <set>
#include <string_view>

namespace accelerate::detail {
namespace optim = torch::optim;
using nlohmann::json;

namespace {

template <class Opt>
struct Kind;

// Adam and AdamW have the same fields under different types.
template <class O, class S>
struct AdamFields {
  using Options = O;
  using State = S;
  template <class F>
  static void options(Options& o, F&& f) {
    f("lr", o.lr()), f("betas", o.betas()), f("eps", o.eps()), f("weight_decay", o.weight_decay()),
        f("amsgrad", o.amsgrad());
  }
  template <class F>
  static void state(State& s, F&& f) {
    f("step", s.step()), f("exp_avg", s.exp_avg()), f("exp_avg_sq", s.exp_avg_sq()),
        f("max_exp_avg_sq", s.max_exp_avg_sq());
  }
  /// The tensors every saved state has (a step without them fails inside torch).
  static bool required(std::string_view field) { return field == "exp_avg" || field == "exp_avg_sq"; }
};

template <>
struct Kind<optim::Adam> : AdamFields<optim::AdamOptions, optim::AdamParamState> {
  static constexpr const char* name = "adam";
};

template <>
struct Kind<optim::AdamW> : AdamFields<optim::AdamWOptions, optim::AdamWParamState> {
  static constexpr const char* name = "adamw";
};

template <>
struct Kind<optim::SGD> {
  using Options = optim::SGDOptions;
  using State = optim::SGDParamState;
  static constexpr const char* name = "sgd";
  template <class F>
  static void options(Options& o, F&& f) {
    f("lr", o.lr()), f("momentum", o.momentum()), f("dampening", o.dampening()), f("weight_decay", o.weight_decay()),
        f("nesterov", o.nesterov());
  }
  template <class F>
  static void state(State& s, F&& f) {
    f("momentum_buffer", s.momentum_buffer());
  }
  static bool required(std::string_view field) { return field == "momentum_buffer"; }  // state only with momentum
};

template <>
struct Kind<optim::Adagrad> {
  using Options = optim::AdagradOptions;
  using State = optim::AdagradParamState;
  static constexpr const char* name = "adagrad";
  template <class F>
  static void options(Options& o, F&& f) {
    f("lr", o.lr()), f("lr_decay", o.lr_decay()), f("weight_decay", o.weight_decay()),
        f("initial_accumulator_value", o.initial_accumulator_value()), f("eps", o.eps());
  }
  template <class F>
  static void state(State& s, F&& f) {
    f("step", s.step()), f("sum", s.sum());
  }
  static bool required(std::string_view field) { return field == "sum"; }
};

template <>
struct Kind<optim::RMSprop> {
  using Options = optim::RMSpropOptions;
  using State = optim::RMSpropParamState;
  static constexpr const char* name = "rmsprop";
  template <class F>
  static void options(Options& o, F&& f) {
    f("lr", o.lr()), f("alpha", o.alpha()), f("eps", o.eps()), f("weight_decay", o.weight_decay()),
        f("momentum", o.momentum()), f("centered", o.centered());
  }
  template <class F>
  static void state(State& s, F&& f) {
    f("step", s.step()), f("square_avg", s.square_avg()), f("momentum_buffer", s.momentum_buffer()),
        f("grad_avg", s.grad_avg());
  }
  static bool required(std::string_view field) { return field == "square_avg"; }
};

std::string tensor_key(size_t param, const char* field) { return concat("state.", param, ".", field); }

template <class Opt, class F>
bool try_kind(optim::Optimizer& base, F& f) {
  if (!dynamic_cast<Opt*>(&base)) return false;
  f(Kind<Opt>{});
  return true;
}

/// Calls f(Kind<T>{}) for the optimizer's type T; false for a type it does not know.
template <class F>
bool dispatch(optim::Optimizer& base, F&& f) {
  return try_kind<optim::Adam>(base, f) || try_kind<optim::AdamW>(base, f) || try_kind<optim::SGD>(base, f) ||
         try_kind<optim::Adagrad>(base, f) || try_kind<optim::RMSprop>(base, f);
}

template <class T>
constexpr bool is_tensor = std::is_same_v<std::decay_t<T>, at::Tensor>;

constexpr const char* kSupported = "Adam, AdamW, SGD, Adagrad and RMSprop are";

}  // namespace

OptimizerState optimizer_state(optim::Optimizer& base) {
  OptimizerState out;
  const bool known = dispatch(base, [&](auto kind) {
    using K = decltype(kind);
    out.meta = {{"optimizer", K::name}, {"param_groups", json::array()}, {"state", json::object()}};
    size_t index = 0;
    for (auto& group : base.param_groups()) {
      json g{{"params", group.params().size()}};
      K::options(static_cast<typename K::Options&>(group.options()), [&](const char* name, auto& v) { g[name] = v; });
      out.meta["param_groups"].push_back(std::move(g));
      for (auto& p : group.params()) {
        const size_t i = index++;
        auto it = base.state().find(p.unsafeGetTensorImpl());
        if (it == base.state().end()) continue;  // no step taken for it yet
        json scalars = json::object();
        K::state(static_cast<typename K::State&>(*it->second), [&](const char* name, auto& v) {
          if constexpr (is_tensor<decltype(v)>) {
            if (v.defined()) out.tensors[tensor_key(i, name)] = v;
          } else {
            scalars[name] = v;
          }
        });
        out.meta["state"][std::to_string(i)] = std::move(scalars);
      }
    }
  });
  ACCELERATE_CHECK(known, CheckpointError, "save_state: this optimizer type cannot be saved yet (", kSupported,
                   "). Save its state yourself with register_for_checkpointing.");
  return out;
}

namespace {
/// The state fields any parameter has in `file`: every parameter with state must have them (a missing one would
/// load silently and fail at the first step, inside torch).
std::set<std::string> state_fields(const safetensors::TensorMap& file) {
  std::set<std::string> fields;
  for (const auto& [key, tensor] : file) {
    const auto dot = key.rfind('.');
    if (key.rfind("state.", 0) == 0 && dot != std::string::npos) fields.insert(key.substr(dot + 1));
  }
  return fields;
}
}  // namespace

void load_optimizer_state(optim::Optimizer& base, const safetensors::TensorMap& file, const json& meta,
                          const std::string& where) {
  auto load = [&](auto kind) {
    using K = decltype(kind);
    const auto saved = meta.value("optimizer", std::string("?"));
    ACCELERATE_CHECK(saved == K::name, CheckpointError, where, " holds the state of a ", saved,
                     " optimizer, but the prepared optimizer is ", K::name, "; prepare the same optimizer type.");
    auto& groups = base.param_groups();
    const auto& saved_groups = meta.at("param_groups");
    ACCELERATE_CHECK(saved_groups.size() == groups.size(), CheckpointError, where, " has ", saved_groups.size(),
                     " parameter groups; this optimizer has ", groups.size(), ".");
    const auto present = state_fields(file);
    base.state().clear();
    size_t index = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      const auto& sg = saved_groups[g];
      ACCELERATE_CHECK(sg.value("params", size_t{0}) == groups[g].params().size(), CheckpointError, where,
                       ": parameter group ", g, " held ", sg.value("params", 0), " parameters; this one has ",
                       groups[g].params().size(), ". Is this checkpoint from another model?");
      K::options(static_cast<typename K::Options&>(groups[g].options()), [&](const char* name, auto& v) {
        if (sg.contains(name)) v = sg[name].template get<std::decay_t<decltype(v)>>();
      });
      for (auto& p : groups[g].params()) {
        const size_t i = index++;
        const auto key = std::to_string(i);
        if (!meta.at("state").contains(key)) continue;
        const auto& scalars = meta["state"][key];
        auto state = std::make_unique<typename K::State>();
        K::state(*state, [&](const char* name, auto& v) {
          if constexpr (is_tensor<decltype(v)>) {
            const auto tk = tensor_key(i, name);
            auto found = file.find(tk);
            if (found == file.end()) {
              ACCELERATE_CHECK(!present.count(name) && !K::required(name), CheckpointError, where, ": tensor ", tk,
                               " is missing; the checkpoint is damaged. Resume from another checkpoint.");
              return;
            }
            v = found->second.clone().to(p.device());
            ACCELERATE_CHECK(v.sizes() == p.sizes(), CheckpointError, where, ": tensor ", tk, " has shape ", v.sizes(),
                             " but its parameter has ", p.sizes(), ". Is this checkpoint from another model?");
          } else if (scalars.contains(name)) {
            v = scalars[name].template get<std::decay_t<decltype(v)>>();
          }
        });
        base.state()[p.unsafeGetTensorImpl()] = std::move(state);
      }
    }
  };
  try {
    ACCELERATE_CHECK(dispatch(base, load), CheckpointError, "load_state: this optimizer type cannot be loaded (",
                     kSupported, ").");
  } catch (const json::exception& e) {
    throw CheckpointError(concat(where, " is malformed: ", e.what()));
  }
}

void move_optimizer_state(optim::Optimizer& base) {
  dispatch(base, [&](auto kind) {
    using K = decltype(kind);
    for (auto& group : base.param_groups()) {
      for (auto& p : group.params()) {
        auto it = base.state().find(p.unsafeGetTensorImpl());
        if (it == base.state().end()) continue;
        K::state(static_cast<typename K::State&>(*it->second), [&](const char*, auto& v) {
          if constexpr (is_tensor<decltype(v)>) {
            if (v.defined() && v.device() != p.device()) v = v.to(p.device());
          }
        });
      }
    }
  });
}

}  // namespace accelerate::detail
