// The GradScaler: skipped steps on inf, unscaling once, fp32 scaling of an fp16 loss, several optimizers.
#include <accelerate/accelerate.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

using namespace accelerate;

namespace {
AcceleratorOptions cpu_options() {
  AcceleratorOptions o;
  o.cpu = true;
  return o;
}
}  // namespace

TEST(GradScaler, InfSkipsTheStepAndHalvesTheScale) {
  auto p = torch::ones({3}, torch::requires_grad());
  torch::optim::SGD opt({p}, 0.1);
  GradScaler scaler({.init_scale = 1024, .growth_interval = 3});
  GradientState gs;
  AcceleratedOptimizer wrapped(opt, gs, &scaler);
  auto loss = scaler.scale((p * 2).sum());
  EXPECT_DOUBLE_EQ(loss.item<double>(), 1024 * 6);
  loss.backward();
  p.mutable_grad()[1] = std::numeric_limits<float>::infinity();  // an overflow
  wrapped.step();
  EXPECT_TRUE(wrapped.step_was_skipped());
  EXPECT_TRUE(torch::equal(p, torch::ones({3})));  // untouched
  EXPECT_DOUBLE_EQ(scaler.get_scale(), 512);
  // Three clean steps grow the scale back; gradients are unscaled before the update.
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    scaler.scale((p * 2).sum()).backward();
    wrapped.step();
    EXPECT_FALSE(wrapped.step_was_skipped());
  }
  EXPECT_DOUBLE_EQ(scaler.get_scale(), 1024);
  EXPECT_NEAR(p[0].item<float>(), 1.0f - 3 * 0.1f * 2.0f, 1e-6);  // three steps of the true gradient 2
}

TEST(GradScaler, UnscaleTwiceIsAnError) {
  auto p = torch::ones({1}, torch::requires_grad());
  torch::optim::SGD opt({p}, 0.1);
  GradScaler scaler;
  scaler.scale(p.sum()).backward();
  scaler.unscale_(opt);
  EXPECT_NEAR(p.grad().item<float>(), 1.0f, 1e-6);
  EXPECT_THROW(scaler.unscale_(opt), StateError);
}

// Issue 11, item 6: the scaled loss is fp32, as torch's (its [1]-shaped fp32 scale promotes the product); in fp16
// 65536 is inf, and at 32768 any loss above 2 overflowed. (The gradient flowing back into an fp16 loss is still
// fp16, in torch too: what decides a skipped step is the gradients, checked below at 32768.)
TEST(GradScaler, AnFp16LossIsScaledInFp32) {
  for (double init : {65536.0, 32768.0}) {
    auto p = torch::ones({2}, torch::requires_grad());
    torch::optim::SGD opt({p}, 0.1);
    GradScaler scaler({.init_scale = init});
    GradientState gs;
    AcceleratedOptimizer wrapped(opt, gs, &scaler);
    const auto loss = (p.to(torch::kHalf) * 0.5).sum() + 2.5;  // 3.5 in fp16; each gradient 0.5
    ASSERT_EQ(loss.scalar_type(), torch::kHalf);
    auto scaled = scaler.scale(loss);
    EXPECT_EQ(scaled.scalar_type(), torch::kFloat);
    EXPECT_DOUBLE_EQ(scaled.item<double>(), 3.5 * init);  // was inf
    if (init == 65536.0) continue;                        // its gradient into the fp16 loss is inf, in torch too
    scaled.backward();
    wrapped.step();
    EXPECT_FALSE(wrapped.step_was_skipped()) << "init_scale " << init;
    EXPECT_DOUBLE_EQ(scaler.get_scale(), init);
    EXPECT_NEAR(p[0].item<float>(), 1.0f - 0.1f * 0.5f, 1e-6);
  }
}

// Issue 11, item 7: two optimizers (a GAN), gradients clipped through the Accelerator (which unscales every
// optimizer) and each stepped: torch keeps the unscaled flag and found-inf per optimizer.
TEST(GradScaler, TwoOptimizersClipAndStepEachStep) {
  auto o = cpu_options();
  o.mixed_precision = "fp16";
  o.fp16_on_cpu = true;
  Accelerator acc(o);
  auto generator = acc.prepare(torch::nn::Linear(2, 2));
  auto discriminator = acc.prepare(torch::nn::Linear(2, 1));
  torch::optim::SGD g_sgd(generator->parameters(), 0.1), d_sgd(discriminator->parameters(), 0.1);
  auto& g_opt = acc.prepare(g_sgd);
  auto& d_opt = acc.prepare(d_sgd);
  for (int step = 0; step < 3; ++step) {
    auto fake = generator->forward(torch::randn({4, 2}));
    acc.backward(discriminator->forward(fake.detach()).mean());
    EXPECT_NO_THROW(acc.clip_grad_norm_(discriminator->parameters(), 1.0));
    d_opt.step();
    d_opt.zero_grad();
    acc.backward(-discriminator->forward(fake).mean());
    EXPECT_NO_THROW(acc.clip_grad_norm_(generator->parameters(), 1.0));
    g_opt.step();
    g_opt.zero_grad();
    EXPECT_FALSE(acc.optimizer_step_was_skipped());
  }
  // An inf in one optimizer skips its step only, and the next update backs the scale off.
  const double before = acc.scaler()->get_scale();
  acc.backward(discriminator->forward(generator->forward(torch::randn({4, 2}))).mean());
  discriminator->parameters()[0].mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
  acc.scaler()->unscale_(d_sgd);
  acc.scaler()->unscale_(g_sgd);
  EXPECT_FALSE(acc.scaler()->step(d_sgd));
  EXPECT_TRUE(acc.scaler()->step(g_sgd));
  acc.scaler()->update();
  EXPECT_DOUBLE_EQ(acc.scaler()->get_scale(), before / 2);
}
