#include "launcher/descendants.hpp"

#include <cctype>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>

namespace accelerate::launcher {

namespace {

/// State and parent from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold spaces and parentheses, so
/// parse after the last ')'). False when the process is gone.
bool read_stat(const std::string& pid, char& state, long& ppid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(stat.substr(close + 1));
  return static_cast<bool>(rest >> state >> ppid);
}

}  // namespace

bool is_stopped(pid_t pid) {
  char state = 0;
  long ppid = 0;
  return read_stat(std::to_string(pid), state, ppid) && (state == 'T' || state == 't');
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (const dirent* entry = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(entry->d_name[0]))) continue;
    char state = 0;
    long ppid = 0;
    if (!read_stat(entry->d_name, state, ppid)) continue;
    if (ppid == parent && state != 'Z' && state != 'X') out.push_back(static_cast<pid_t>(std::stol(entry->d_name)));
  }
  ::closedir(proc);
  return out;
}

}  // namespace accelerate::launcher
