// Joins the process group and exits: what launch_bench times (start -> every rank past rendezvous -> exit).
#include <accelerate/accelerate.hpp>

int main() try {
  accelerate::ProcessStateOptions options;
  options.cpu = true;
  accelerate::ProcessState state(options);
  return 0;
} catch (const accelerate::Error& e) {
  std::cerr << "rendezvous_probe: " << e.what() << std::endl;
  return 1;
}
