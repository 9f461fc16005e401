// What message_of (detail/error_text.hpp) keeps of a library's exception.
#include "detail/error_text.hpp"

#include <c10/util/Exception.h>

namespace accelerate::detail {

std::string message_of(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string what = c10_error ? c10_error->what_without_backtrace() : error.what();
  if (what.size() > 2000) {
    what.resize(2000);
    what.append(" ...");
  }
  return what;
}

}  // namespace accelerate::detail
