// tokenizers/tokenizer.h — the interface every tokenizer implements, and the factories.
//
// A tokenizer maps text (a byte string, normally UTF-8) to token ids 0..vocab_size()-1 and back.
// Tasks hold a `const Tokenizer&` and never care which kind it is. Two kinds exist:
//   "byte"  ByteTokenizer (byte_tokenizer.h): ids 0..255 are the bytes, 256 = end of text, 257 = pad.
//   "char"  CharTokenizer (char_tokenizer.h): 0 = pad, 1 = end of text, 2 = unknown, then one id
//           per UTF-8 code point of a vocabulary built from a corpus.
//
// Contract shared by both:
//   * encode(text) maps the text only: it never produces special ids, and the literal
//     "<|endoftext|>" is encoded as its 13 characters. To mark document boundaries, either append
//     eos_id() yourself or call encode_with_specials, which turns every literal marker into eos_id().
//   * decode(ids) is the inverse: decode(encode(text)) == text for every byte string the tokenizer
//     covers (the byte tokenizer covers all of them, invalid UTF-8 included; the char tokenizer
//     covers text whose characters are all in its vocabulary). Special ids decode to "" except the
//     char tokenizer's unknown id, which decodes to U+FFFD. An id outside 0..vocab_size()-1 throws
//     TokenizerError naming the id and its position.
//   * to_json() is a small self-describing JSON string meant for a checkpoint's __metadata__, and
//     tokenizer_from_json(to_json()) rebuilds an identical tokenizer. Formats:
//       {"type":"byte"}
//       {"type":"char","chars":[<code points, strictly ascending, decimal>]}
//     where code points are Unicode scalar values or U+DC80..U+DCFF (escaped invalid bytes, see
//     utf8.h); the i-th entry of "chars" has id 3 + i. No other keys are allowed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizers/error.h"

namespace ssm {

// The end-of-text marker as it appears in pretraining text between documents.
inline constexpr std::string_view kEndOfTextMarker = "<|endoftext|>";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string name() const = 0;  // "byte" or "char"
  virtual int32_t vocab_size() const = 0;
  virtual int32_t eos_id() const = 0;    // end of text
  virtual int32_t pad_id() const = 0;
  virtual int32_t unk_id() const = 0;    // unknown character, or -1 when every input is representable
  bool is_special(int32_t id) const { return id >= 0 && (id == eos_id() || id == pad_id() || id == unk_id()); }

  // Text to ids; never emits special ids except unk_id() for characters outside the vocabulary.
  std::vector<int32_t> encode(std::string_view text) const;
  // Same, appending to `out` (to encode a large corpus piece by piece without copies).
  virtual void encode_append(std::string_view text, std::vector<int32_t>& out) const = 0;
  // Like encode, but every literal kEndOfTextMarker becomes eos_id().
  std::vector<int32_t> encode_with_specials(std::string_view text) const;

  // Ids to text; throws TokenizerError for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const;
  std::string decode(const std::vector<int32_t>& ids) const { return decode(std::span<const int32_t>(ids)); }
  // Same, appending to `out`; when it throws, `out` may already hold the text of the ids before the bad one.
  virtual void decode_append(std::span<const int32_t> ids, std::string& out) const = 0;

  virtual std::string to_json() const = 0;

 protected:
  // The error decode throws for ids[index] outside 0..vocab_size()-1.
  [[noreturn]] void throw_bad_id(std::span<const int32_t> ids, std::size_t index) const;
};

// Rebuilds a tokenizer from its to_json() form; throws TokenizerError on anything malformed.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json);

// "byte" (corpus ignored) or "char" (vocabulary built from `corpus`, keeping at most
// max_vocab_size ids in all, specials included; 0 = no limit). Throws TokenizerError otherwise.
std::unique_ptr<Tokenizer> make_tokenizer(std::string_view name, std::string_view corpus = {},
                                          std::size_t max_vocab_size = 0);

}  // namespace ssm
