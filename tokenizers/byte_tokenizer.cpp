// tokenizers/byte_tokenizer.cpp — see byte_tokenizer.h for the id assignment.
#include "tokenizers/byte_tokenizer.h"

namespace ssm {

void ByteTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  out.reserve(out.size() + text.size());
  for (const char c : text) out.push_back(static_cast<unsigned char>(c));
}

void ByteTokenizer::decode_append(std::span<const int32_t> ids, std::string& out) const {
  out.reserve(out.size() + ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id >= 0 && id < kNumBytes) {
      out.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (id != kEndOfText && id != kPad) {
      throw_bad_id(ids, i);
    }  // specials carry no text
  }
}

}  // namespace ssm
