// The main job until the training example exists: every process joins the group, then exercises the
// collectives and prints what rank 0 sees.
//   accelerate-cpp launch --num_processes 2 --cpu build/bin/collectives_demo
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>

int main() try {
  accelerate::ProcessState state;
  const int rank = state.process_index();
  accelerate::print(state, "world of", state.num_processes(), "process(es), backend", state.backend(), "launched by",
                    to_string(state.launcher()));

  // Each rank holds rank+1 rows: gather pads, all-gathers and trims.
  auto rows = at::full({rank + 1, 2}, static_cast<double>(rank));
  auto gathered = accelerate::gather(state, rows);
  accelerate::print(state, "gather of uneven rows ->", gathered.sizes(), "\n", gathered);

  auto mean = accelerate::reduce(state, at::full({3}, static_cast<double>(rank)), accelerate::Reduction::Mean);
  accelerate::print(state, "reduce(mean) of the ranks ->", mean);

  auto names = accelerate::gather_object(state, std::vector<std::string>{"from rank " + std::to_string(rank)});
  for (const auto& n : names) accelerate::print(state, "gather_object:", n);

  {
    auto first = accelerate::main_process_first(state);
    if (state.is_main_process()) accelerate::print(state, "main process goes first (e.g. to download data)");
  }
  accelerate::wait_for_everyone(state);
  state.destroy_process_group();
  return 0;
} catch (const accelerate::Error& e) {
  std::cerr << "collectives_demo: " << e.what() << std::endl;
  return 1;
}
