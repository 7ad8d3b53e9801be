// tokenizers/byte_tokenizer.h — every byte is a token; covers any byte string, invalid UTF-8 included.
//
// Id assignment (fixed, never changes — checkpoints rely on it):
//     0..255  the byte with that value (id = static_cast<unsigned char>(byte))
//     256     end of text  (kEndOfText, written "<|endoftext|>" in pretraining text)
//     257     padding      (kPad)
//   vocab_size() = 258; there is no unknown id (unk_id() = -1).
//
// encode() emits only ids 0..255 (the literal "<|endoftext|>" is 13 byte ids), so a model whose
// embedding has 256 rows — the "bytes as tokens" setup of the PyTorch peer and of the parity
// files — can consume its output directly; the specials need vocab 258. decode() maps 256 and
// 257 to nothing, so decode(encode(s)) == s for every byte string s.
#pragma once
#include "tokenizers/tokenizer.h"

namespace ssm {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kNumBytes = 256;
  static constexpr int32_t kEndOfText = 256;
  static constexpr int32_t kPad = 257;
  static constexpr int32_t kVocabSize = 258;

  std::string name() const override { return "byte"; }
  int32_t vocab_size() const override { return kVocabSize; }
  int32_t eos_id() const override { return kEndOfText; }
  int32_t pad_id() const override { return kPad; }
  int32_t unk_id() const override { return -1; }

  void encode_append(std::string_view text, std::vector<int32_t>& out) const override;
  void decode_append(std::span<const int32_t> ids, std::string& out) const override;

  std::string to_json() const override { return R"({"type":"byte"})"; }
};

}  // namespace ssm
