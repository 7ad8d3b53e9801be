// tokenizers/char_tokenizer.h — one token per character (UTF-8 code point) of a vocabulary built
// from a corpus and saved with the checkpoint (to_json).
//
// Id assignment:
//     0          padding      (kPad)
//     1          end of text  (kEndOfText)
//     2          unknown      (kUnknown): any character not in the vocabulary
//     3 + i      chars()[i], the vocabulary sorted by code point
//   vocab_size() = 3 + chars().size().
//
// Text is decoded as UTF-8 with surrogate escape (utf8.h): a byte that is not part of a
// well-formed sequence is the "character" U+DC00 + byte. So a vocabulary built from a corpus with
// invalid UTF-8 also covers those bytes, and decode(encode(s)) == s holds for every s all of whose
// characters (escapes included) are in the vocabulary. Characters outside it encode to kUnknown,
// which decodes to U+FFFD, so the round trip is then lossy by design. Pad and end of text decode
// to "". (Model-generated ids may put escape tokens next to each other that decode to valid
// UTF-8; encode(decode(ids)) == ids is therefore not promised.)
#pragma once
#include <array>

#include "tokenizers/tokenizer.h"

namespace ssm {

class CharTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kPad = 0;
  static constexpr int32_t kEndOfText = 1;
  static constexpr int32_t kUnknown = 2;
  static constexpr int32_t kFirstChar = 3;

  // A vocabulary given explicitly: strictly ascending code points, each a Unicode scalar value or
  // an escape U+DC80..U+DCFF. Throws TokenizerError otherwise (naming the offending entry).
  explicit CharTokenizer(std::vector<char32_t> chars);

  // The vocabulary of `corpus`: every character in it, or — when max_vocab_size > 0 and there are
  // more — the max_vocab_size - 3 most frequent ones (ties broken by the smaller code point).
  // max_vocab_size counts the specials, so 1 or 2 throws; 3 keeps only the specials.
  static CharTokenizer from_corpus(std::string_view corpus, std::size_t max_vocab_size = 0);

  std::string name() const override { return "char"; }
  int32_t vocab_size() const override { return kFirstChar + static_cast<int32_t>(chars_.size()); }
  int32_t eos_id() const override { return kEndOfText; }
  int32_t pad_id() const override { return kPad; }
  int32_t unk_id() const override { return kUnknown; }

  const std::vector<char32_t>& chars() const { return chars_; }
  int32_t id_of(char32_t cp) const;  // kUnknown when cp is not in the vocabulary

  void encode_append(std::string_view text, std::vector<int32_t>& out) const override;
  void decode_append(std::span<const int32_t> ids, std::string& out) const override;

  std::string to_json() const override;

 private:
  std::vector<char32_t> chars_;
  std::array<int32_t, 128> ascii_ids_;  // id_of for ASCII without the binary search
};

}  // namespace ssm
