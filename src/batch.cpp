#include <accelerate/batch.hpp>

#include <accelerate/error.hpp>

namespace accelerate {

Batch::Batch(at::Tensor data_, at::Tensor target_) : data(std::move(data_)), target(std::move(target_)) {}

Batch::Batch(std::initializer_list<std::pair<const std::string, at::Tensor>> fields) {
  for (const auto& [name, tensor] : fields) (*this)[name] = tensor;
}

at::Tensor& Batch::operator[](const std::string& name) {
  if (name == "data") return data;
  if (name == "target") return target;
  return named_[name];
}

const at::Tensor& Batch::at(const std::string& name) const {
  const at::Tensor* found = name == "data" ? &data : name == "target" ? &target : nullptr;
  if (!found) {
    auto it = named_.find(name);
    if (it != named_.end()) found = &it->second;
  }
  if (!found || !found->defined()) {
    std::string there;
    for (const auto& n : names()) there.append(there.empty() ? "" : ", ").append(n);
    throw ConfigError(
        detail::concat("Batch has no field '", name, "'; its fields are: ", there.empty() ? "(none)" : there, "."));
  }
  return *found;
}

bool Batch::contains(const std::string& name) const {
  if (name == "data") return data.defined();
  if (name == "target") return target.defined();
  auto it = named_.find(name);
  return it != named_.end() && it->second.defined();
}

std::vector<std::pair<std::string, at::Tensor>> Batch::items() const {
  std::map<std::string, at::Tensor> all;
  for (const auto& [name, tensor] : named_) {
    if (tensor.defined()) all.emplace(name, tensor);
  }
  if (data.defined()) all.emplace("data", data);
  if (target.defined()) all.emplace("target", target);
  return {all.begin(), all.end()};
}

std::vector<std::string> Batch::names() const {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : items()) out.push_back(name);
  return out;
}

Batch apply(const Batch& batch, const std::function<at::Tensor(const at::Tensor&)>& f) {
  Batch out;
  for (const auto& [name, tensor] : batch.items()) out[name] = f(tensor);
  return out;
}

at::Tensor send_to_device(const at::Tensor& tensor, c10::Device device, bool non_blocking) {
  return tensor.device() == device ? tensor : tensor.to(device, non_blocking);
}

Batch send_to_device(const Batch& batch, c10::Device device, bool non_blocking) {
  return apply(batch, [&](const at::Tensor& t) { return send_to_device(t, device, non_blocking); });
}

}  // namespace accelerate
