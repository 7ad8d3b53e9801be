// tokenizers/error.h — the one exception type of the tokenizers library.
//
// tokenizers/ stands alone (only the C++ standard library), so it does not reuse ssm::Error from
// tensor/. Every failure a caller can provoke — an id outside the vocabulary, a malformed
// serialisation, an invalid vocabulary — throws TokenizerError with a message naming the
// offending value; nothing in this folder aborts or reads out of bounds on hostile input.
#pragma once
#include <stdexcept>

namespace ssm {

class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ssm
