// save_model / load_checkpoint_in_model: HF's shard and index layout, and indexes that must be refused.
#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>

#include <ATen/ATen.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

namespace st = accelerate::safetensors;
namespace fs = std::filesystem;

namespace {
std::string temp(const std::string& name) {
  return (fs::temp_directory_path() / ("accelerate_st_unit_" + std::to_string(::getpid()) + "_" + name)).string();
}
}  // namespace

#include <accelerate/model_io.hpp>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

namespace {
torch::nn::Sequential numbered_model(float offset) {
  torch::nn::Sequential m(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 2));
  at::NoGradGuard no_grad;
  float k = offset;
  for (auto& p : m->parameters()) p.copy_(at::arange(p.numel(), at::kFloat).reshape(p.sizes()) * 0.01 + k++);
  return m;
}
bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}
}  // namespace

TEST(SaveModel, ShardsWithIndexAndLoadsBack) {
  const auto dir = temp("sharded");
  auto source = numbered_model(1);
  // In name order the tensors take 32, 128, 32, 256, 8 and 64 bytes: with 150-byte shards that is
  // {0.bias} {0.weight} {1.bias} {1.weight} {2.bias, 2.weight}.
  accelerate::save_model(*source, dir, 150);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model-00005-of-00005.safetensors")) << "expected 5 shards";
  auto target = numbered_model(100);
  accelerate::load_checkpoint_in_model(*target, dir);
  EXPECT_TRUE(same_weights(*source, *target));
  // Saving again unsharded removes the stale shards and the index.
  accelerate::save_model(*source, dir);
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model-00001-of-00005.safetensors"));
  auto single = numbered_model(200);
  accelerate::load_checkpoint_in_model(*single, dir);
  EXPECT_TRUE(same_weights(*source, *single));
  fs::remove_all(dir);
}

TEST(SaveModel, RefusesIndexesThatEscapeTheFolderAndOtherModels) {
  const auto dir = temp("evil");
  auto source = numbered_model(1);
  accelerate::save_model(*source, dir, 150);
  std::ofstream(fs::path(dir) / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"0.weight":"../../etc/passwd"}})";
  auto target = numbered_model(5);
  try {
    accelerate::load_checkpoint_in_model(*target, dir);
    FAIL() << "followed a path out of the checkpoint folder";
  } catch (const accelerate::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("not a file name inside the checkpoint folder"), std::string::npos)
        << e.what();
  }
  accelerate::save_model(*source, dir);
  torch::nn::Sequential other(torch::nn::Linear(4, 3));
  EXPECT_THROW(accelerate::load_checkpoint_in_model(*other, dir), accelerate::CheckpointError);
  fs::remove_all(dir);
}

namespace {
namespace acc = accelerate;

std::string error_of_load(torch::nn::Module& model, const std::string& path, const acc::LoadOptions& options = {}) {
  try {
    acc::load_checkpoint_in_model(model, path, options);
  } catch (const acc::CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

// A checkpoint that does not fit names every problem at once (shapes, missing and unexpected keys) and changes
// nothing in the model, also when the problems are in the last shard of an index.
TEST(LoadCheckpoint, AStrictLoadNamesEveryProblemAndLoadsNothing) {
  const auto dir = temp("strict");
  auto source = numbered_model(1);
  acc::save_model(*source, dir, 150);  // 5 shards; "2.*" in the last
  torch::nn::Sequential other(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 3),
                              torch::nn::Linear(3, 3));
  torch::nn::Sequential before(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 3),
                               torch::nn::Linear(3, 3));
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < other->parameters().size(); ++i) before->parameters()[i].copy_(other->parameters()[i]);
  }
  const auto message = error_of_load(*other, dir);
  EXPECT_TRUE(contains(message, "nothing was loaded")) << message;
  EXPECT_TRUE(contains(message,
                       "'2.weight' in model-00005-of-00005.safetensors is Float[2, 8] but the model's is "
                       "Float[3, 8]"))
      << message;
  EXPECT_TRUE(contains(message, "'2.bias'")) << message;
  EXPECT_TRUE(contains(message, "missing (the model needs them, the checkpoint has none): '3.bias', '3.weight'"))
      << message;
  EXPECT_TRUE(same_weights(*other, *before)) << "a failed load changed the model";
  // Shapes are an error under strict = false too (as torch's); missing and unexpected keys are not.
  EXPECT_TRUE(contains(error_of_load(*other, dir, {.strict = false}), "'2.weight'"));
  fs::remove_all(dir);
}

TEST(LoadCheckpoint, NonStrictReturnsMissingAndUnexpectedKeysByName) {
  const auto dir = temp("lenient");
  auto source = numbered_model(1);
  acc::save_model(*source, dir);
  torch::nn::Sequential shorter(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8));
  const auto r = acc::load_checkpoint_in_model(*shorter, dir, {.strict = false});
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"2.bias", "2.weight"}));
  EXPECT_TRUE(at::equal(shorter->parameters()[0], source->parameters()[0]));
  EXPECT_TRUE(at::equal(shorter->parameters()[3], source->parameters()[3]));
  const auto strict = error_of_load(*shorter, dir);
  EXPECT_TRUE(contains(strict, "unexpected (the model has no such tensor")) << strict;
  EXPECT_TRUE(contains(strict, "'2.bias', '2.weight'")) << strict;
  EXPECT_TRUE(contains(strict, "strict = false loads the tensors that match")) << strict;
  torch::nn::Sequential longer(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 2),
                               torch::nn::Linear(2, 2));
  const auto l = acc::load_checkpoint_in_model(*longer, dir, {.strict = false});
  EXPECT_EQ(l.missing_keys, (std::vector<std::string>{"3.bias", "3.weight"}));
  EXPECT_TRUE(l.unexpected_keys.empty());
  EXPECT_TRUE(at::equal(longer->parameters()[5], source->parameters()[5]));
  fs::remove_all(dir);
}

namespace {
/// A Linear and an integer buffer (a step count), to see that only floating-point tensors are cast.
struct CountedImpl : torch::nn::Module {
  CountedImpl() {
    linear = register_module("linear", torch::nn::Linear(3, 2));
    steps = register_buffer("steps", at::full({1}, 7, at::kLong));
  }
  torch::nn::Linear linear{nullptr};
  at::Tensor steps;
};
TORCH_MODULE(Counted);
}  // namespace

TEST(LoadCheckpoint, DtypeCastsFloatingPointTensorsOnly) {
  const auto file = temp("bf16.safetensors");
  const auto w = at::randn({2, 3}).to(at::kBFloat16), b = at::randn({2}).to(at::kBFloat16);
  st::save_file({{"linear.weight", w}, {"linear.bias", b}, {"steps", at::full({1}, 42, at::kLong)}}, file);
  Counted model;
  const auto refused = error_of_load(*model, file);
  EXPECT_TRUE(contains(refused, "'linear.weight' in ")) << refused;
  EXPECT_TRUE(contains(refused, "is BFloat16[2, 3] but the model's is Float[2, 3]")) << refused;
  EXPECT_TRUE(contains(refused, "LoadOptions::dtype casts")) << refused;
  acc::load_checkpoint_in_model(*model, file, {.dtype = at::kFloat});  // a bf16 checkpoint into an fp32 model
  EXPECT_EQ(model->linear->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(model->linear->weight, w.to(at::kFloat)));
  EXPECT_EQ(model->steps.item<int64_t>(), 42);
  Counted half;
  acc::load_checkpoint_in_model(*half, file, {.dtype = at::kBFloat16});  // the model converted to bf16
  EXPECT_EQ(half->linear->weight.scalar_type(), at::kBFloat16);
  EXPECT_EQ(half->linear->bias.scalar_type(), at::kBFloat16);
  EXPECT_EQ(half->steps.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(half->linear->weight, w));
  EXPECT_TRUE(half->linear->weight.requires_grad()) << "the parameter stays a trainable parameter";
  fs::remove(file);
}

// Another library's names and layouts: a prefix stripped, a key renamed, keys skipped, a weight stored transposed.
TEST(LoadCheckpoint, RenamesSkipsAndTransforms) {
  const auto file = temp("foreign.safetensors");
  auto source = numbered_model(1);
  const auto p = source->named_parameters();
  st::save_file({{"body.0.weight", p["0.weight"].t().contiguous()},
                 {"body.0.bias", p["0.bias"]},
                 {"body.1.weight", p["1.weight"].t().contiguous()},
                 {"body.1.bias", p["1.bias"]},
                 {"head.w", p["2.weight"]},
                 {"head.b", p["2.bias"]},
                 {"body.0.attn_mask", at::ones({4})}},
                file);
  acc::LoadOptions options;
  options.rename = {{"head.w", "2.weight"}, {"head.b", "2.bias"}};
  options.rename_fn = [](const std::string& key) -> std::optional<std::string> {
    if (key.ends_with(".attn_mask")) return std::nullopt;
    return key.starts_with("body.") ? key.substr(5) : key;
  };
  options.transform = [](const std::string& model_key, const at::Tensor& t) {
    return model_key == "0.weight" || model_key == "1.weight" ? t.t() : t;
  };
  auto target = numbered_model(50);
  const auto r = acc::load_checkpoint_in_model(*target, file, options);
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_TRUE(same_weights(*source, *target));
  // Without the transform the square 1.weight would pass the shape check: 0.weight (4 -> 8) does not.
  options.transform = nullptr;
  const auto message = error_of_load(*target, file, options);
  EXPECT_TRUE(contains(message, "'0.weight' (checkpoint 'body.0.weight') in ")) << message;
  EXPECT_TRUE(contains(message, "is Float[4, 8] but the model's is Float[8, 4]")) << message;
  options.rename["head.b"] = "2.weight";  // two tensors onto one
  const auto twice = error_of_load(*target, file, options);
  EXPECT_TRUE(contains(twice, "'head.b' and 'head.w' are both renamed to '2.weight'")) << twice;
  fs::remove(file);
}

TEST(LoadCheckpoint, AnIndexFileItselfAndAShardThatLacksItsTensor) {
  const auto dir = temp("index");
  auto source = numbered_model(1);
  acc::save_model(*source, dir, 150);
  auto target = numbered_model(9);
  acc::load_checkpoint_in_model(*target, (fs::path(dir) / "model.safetensors.index.json").string());
  EXPECT_TRUE(same_weights(*source, *target));
  // The index sends 2.weight to the shard of 0.bias.
  std::ifstream in(fs::path(dir) / "model.safetensors.index.json");
  std::string index((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = index.find("\"2.weight\": \"model-00005-of-00005.safetensors\"");
  ASSERT_NE(at, std::string::npos) << index;
  index.replace(at, std::string("\"2.weight\": \"model-00005-of-00005.safetensors\"").size(),
                "\"2.weight\": \"model-00001-of-00005.safetensors\"");
  std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index;
  auto untouched = numbered_model(9), reference = numbered_model(9);
  const auto message = error_of_load(*untouched, dir);
  EXPECT_TRUE(contains(message,
                       "'2.weight': the index puts it in model-00001-of-00005.safetensors, which does not "
                       "have it"))
      << message;
  EXPECT_TRUE(same_weights(*untouched, *reference));
  fs::remove_all(dir);
}

// HF's init_empty_weights then load: the parameters lose their memory (a read says why), and loading gives it
// back with the checkpoint's values (the way to use such a model without ZeRO stage 3).
TEST(InitEmptyWeights, FreesParametersAndALoadGivesThemBack) {
  const auto dir = temp("empty_weights");
  accelerate::save_model(*numbered_model(1.0f), dir);
  auto model = accelerate::init_empty_weights(numbered_model(0.0f));
  auto weight = model->parameters()[0];
  try {
    (void)weight.sum().item<float>();
    FAIL() << "a parameter without weights was read";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("its module was built through accelerate::init_empty_weights"),
              std::string::npos)
        << e.what();
  }
  accelerate::load_checkpoint_in_model(*model, dir);
  const auto expected = numbered_model(1.0f)->parameters();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(at::equal(model->parameters()[i], expected[i])) << i;
  EXPECT_TRUE(model->parameters()[0].is_same(weight));  // the same parameter objects, now with memory
  fs::remove_all(dir);
}
