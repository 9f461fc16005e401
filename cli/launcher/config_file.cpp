// launch's use of the HF config file: flags given on the command line win, the file fills the rest, defaults
// fill what the file leaves out (HF's order).
#include "launcher/launch_plan.hpp"

#include <iostream>

#include "config/hf_config.hpp"

namespace accelerate::launcher {

void merge_config_file(LaunchOptions& o, const std::string& path) {
  const auto c = cli::read_config(path, std::cerr);
  if (!o.num_processes) o.num_processes = c.num_processes;
  if (!o.num_machines) o.num_machines = c.num_machines;
  if (!o.machine_rank) o.machine_rank = c.machine_rank;
  if (!o.main_process_ip && c.main_process_ip) o.main_process_ip = c.main_process_ip;
  if (!o.main_process_port && c.main_process_port) o.main_process_port = c.main_process_port;
  if (!o.mixed_precision) o.mixed_precision = c.mixed_precision;
  if (!o.gradient_accumulation_steps && c.gradient_accumulation_steps != 1) {
    o.gradient_accumulation_steps = c.gradient_accumulation_steps;
  }
  if (!o.zero_stage && c.zero_stage != 0) o.zero_stage = c.zero_stage;
  if (c.use_cpu || c.distributed_type == "MULTI_CPU") o.cpu = true;
  if (c.debug) o.debug = true;
  if (!o.gpu_ids && c.gpu_ids) o.gpu_ids = c.gpu_ids;
}

}  // namespace accelerate::launcher
