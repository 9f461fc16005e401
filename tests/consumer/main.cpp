#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>

int main() {
  accelerate::ProcessState state;
  auto all = accelerate::gather(state, at::ones({2}));
  accelerate::print(state, "consumer: gathered", all.numel(), "values from", state.num_processes(), "process(es)");
  return all.numel() == 2 * state.num_processes() ? 0 : 1;
}
