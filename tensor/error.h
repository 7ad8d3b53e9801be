// tensor/error.h — the one exception type of the engine and the check macro every op uses.
//
// Errors are exceptions whose message a user can act on: the op's name and the offending
// shapes/dtypes/devices (see the architecture's "Conventions"). The CLI catches them at its
// boundary and prints one line.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ssm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace ssm

// SSM_CHECK(cond, part, part, ...): throw ssm::Error with the parts streamed together when cond is false.
#define SSM_CHECK(cond, ...)                                      \
  do {                                                            \
    if (!(cond)) throw ::ssm::Error(::ssm::detail::concat(__VA_ARGS__)); \
  } while (0)
