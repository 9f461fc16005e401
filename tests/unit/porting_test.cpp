// A short HF Accelerate script ported line by line (issue 12, item 9): the options in HF's order with project_dir,
// tqdm over the loader, reduce(t, "sum"), and plain ints logged. It must compile and run as written.
//
//   accelerator = Accelerator(split_batches=False, mixed_precision="no", gradient_accumulation_steps=2, cpu=True,
//                             log_with="jsonl", project_dir=out)
//   model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
//   accelerator.init_trackers("port", config={"epochs": 2})
//   for epoch in range(2):
//       bar = tqdm(loader)
//       for x, y in bar:
//           with accelerator.accumulate(model):
//               loss = F.mse_loss(model(x), y)
//               accelerator.backward(loss)
//               optimizer.step(); optimizer.zero_grad()
//           bar.set_postfix(loss=loss.item())
//       preds, targets = accelerator.gather_for_metrics((model(x), y))
//       total = accelerator.reduce(loss.detach(), "sum")
//       accelerator.log({"epoch": epoch, "loss": total.item()}, step=epoch)
//   accelerator.end_training()
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

using namespace accelerate;
namespace fs = std::filesystem;

TEST(Porting, AnHfLoopPortsLineByLine) {
  const auto out = fs::temp_directory_path() / ("accelerate_port_" + std::to_string(::getpid()));
  fs::remove_all(out);
  Accelerator accelerator({.split_batches = false,
                           .mixed_precision = "no",
                           .gradient_accumulation_steps = 2,
                           .cpu = true,
                           .log_with = "jsonl",
                           .project_dir = out.string()});
  auto model = torch::nn::Linear(3, 1);
  torch::optim::SGD optimizer(model->parameters(), 0.1);
  auto x = torch::randn({16, 3}), y = torch::randn({16, 1});
  DataLoader loader(std::make_shared<TensorDataset>(x, y), {.batch_size = 4});
  auto [net, opt, dl] = accelerator.prepare(model, optimizer, loader);
  accelerator.init_trackers("port", {{"epochs", 2}});
  torch::Tensor loss;
  int batches = 0;
  for (int epoch = 0; epoch < 2; ++epoch) {
    auto bar = progress_bar(dl, {.terminal = false});
    for (auto& batch : bar) {
      auto step = accelerator.accumulate(net);
      loss = torch::mse_loss(net->forward(batch.data), batch.target);
      accelerator.backward(loss);
      opt.step();
      opt.zero_grad();
      ++batches;
      bar.set_postfix({{"loss", loss.item<double>()}});
      EXPECT_NE(bar.bar()->render().find(", loss="), std::string::npos);
    }
    torch::NoGradGuard no_grad;
    auto [preds, targets] = accelerator.gather_for_metrics(net->forward(x), y);
    EXPECT_EQ(preds.size(0), 16);
    EXPECT_TRUE(torch::equal(targets, y));
    auto total = accelerator.reduce(loss.detach(), "sum");
    accelerator.log({{"epoch", epoch}, {"loss", total.item<double>()}}, epoch);
  }
  accelerator.end_training();
  EXPECT_EQ(batches, 8);
  std::ifstream log(out / "port" / "metrics.jsonl");
  const std::string lines((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(lines.find("\"_config\":{\"epochs\":2}"), std::string::npos) << lines;  // ints, not doubles
  EXPECT_NE(lines.find("\"epoch\":1,"), std::string::npos) << lines;
  EXPECT_THROW(accelerator.reduce(torch::ones({1}), "avg"), ConfigError);
  fs::remove_all(out);
}
