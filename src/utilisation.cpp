// GPU and CPU utilisation for the state report (detail/utilisation.hpp). NVML's C API is declared here with the
// few types it needs (nvml.h is NVIDIA's, and the library must load and run without it).
#include "detail/utilisation.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <dlfcn.h>
#include <unistd.h>

namespace accelerate::detail {
namespace {

using Device = void*;  // nvmlDevice_t: an opaque pointer
struct Utilization {
  unsigned gpu, memory;
};
struct Memory {
  unsigned long long total, free, used;
};

/// The physical index of visible CUDA device `index`: CUDA_VISIBLE_DEVICES=2,3 makes device 0 the third GPU.
unsigned physical_index(int index) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!visible || !*visible) return static_cast<unsigned>(index);
  std::vector<unsigned> ids;
  std::stringstream list(visible);
  for (std::string id; std::getline(list, id, ',');) {
    try {
      ids.push_back(static_cast<unsigned>(std::stoul(id)));
    } catch (const std::exception&) {
      return static_cast<unsigned>(index);  // UUIDs: NVML's order is assumed
    }
  }
  return index >= 0 && static_cast<size_t>(index) < ids.size() ? ids[index] : static_cast<unsigned>(index);
}

}  // namespace

std::optional<GpuUtilisation> gpu_utilisation(int index, std::string& why) {
  void* nvml = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!nvml) {
    why = "NVML not found (libnvidia-ml.so.1, from NVIDIA's driver)";
    return std::nullopt;
  }
  auto symbol = [&](const char* name) { return ::dlsym(nvml, name); };
  auto init = reinterpret_cast<int (*)()>(symbol("nvmlInit_v2"));
  auto shutdown = reinterpret_cast<int (*)()>(symbol("nvmlShutdown"));
  auto handle = reinterpret_cast<int (*)(unsigned, Device*)>(symbol("nvmlDeviceGetHandleByIndex_v2"));
  auto rates = reinterpret_cast<int (*)(Device, Utilization*)>(symbol("nvmlDeviceGetUtilizationRates"));
  auto memory = reinterpret_cast<int (*)(Device, Memory*)>(symbol("nvmlDeviceGetMemoryInfo"));
  std::optional<GpuUtilisation> out;
  if (!init || !shutdown || !handle || !rates || !memory) {
    why = "NVML lacks the functions this report uses";
  } else if (init() != 0) {
    why = "NVML did not start (nvmlInit failed)";
  } else {
    Device device = nullptr;
    Utilization u{};
    Memory m{};
    if (handle(physical_index(index), &device) == 0 && rates(device, &u) == 0 && memory(device, &m) == 0) {
      out = GpuUtilisation{u.gpu, u.memory, m.used, m.total};
    } else {
      why = "NVML could not read the device";
    }
    shutdown();
  }
  ::dlclose(nvml);
  return out;
}

std::optional<double> process_cpu_percent() {
  std::ifstream stat("/proc/self/stat"), uptime_file("/proc/uptime");
  std::string text;
  double uptime = 0;
  if (!std::getline(stat, text) || !(uptime_file >> uptime)) return std::nullopt;
  // Fields after the command name (which may hold spaces, so it is skipped by its closing parenthesis): utime is
  // field 14, stime 15, starttime 22 (clock ticks).
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  if (f.size() < 20) return std::nullopt;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks, started = std::stod(f[19]) / ticks;
  const double wall = uptime - started;
  if (wall <= 0) return std::nullopt;
  return 100.0 * cpu / wall;
}

}  // namespace accelerate::detail
