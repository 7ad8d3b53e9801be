// tokenizers/tokenizer.cpp — the parts of the Tokenizer interface shared by every kind.
#include "tokenizers/tokenizer.h"

namespace ssm {

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  encode_append(text, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_with_specials(std::string_view text) const {
  std::vector<int32_t> out;
  while (true) {
    const std::size_t at = text.find(kEndOfTextMarker);
    encode_append(text.substr(0, at), out);
    if (at == std::string_view::npos) return out;
    out.push_back(eos_id());
    text.remove_prefix(at + kEndOfTextMarker.size());
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  decode_append(ids, out);
  return out;
}

void Tokenizer::throw_bad_id(std::span<const int32_t> ids, std::size_t index) const {
  throw TokenizerError(name() + " tokenizer: cannot decode id " + std::to_string(ids[index]) + " at position " +
                       std::to_string(index) + ", valid ids are 0.." + std::to_string(vocab_size() - 1));
}

}  // namespace ssm
