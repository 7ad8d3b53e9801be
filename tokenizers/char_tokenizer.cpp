// tokenizers/char_tokenizer.cpp — see char_tokenizer.h for the id assignment and round-trip rules.
#include "tokenizers/char_tokenizer.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "tokenizers/utf8.h"

namespace ssm {

CharTokenizer::CharTokenizer(std::vector<char32_t> chars) : chars_(std::move(chars)) {
  for (std::size_t i = 0; i < chars_.size(); ++i) {
    const char32_t cp = chars_[i];
    if (!utf8::is_scalar_value(cp) && !utf8::is_escape(cp)) {
      throw TokenizerError("char tokenizer: vocabulary entry " + std::to_string(i) + " is " + utf8::describe(cp) +
                           ", neither a Unicode scalar value nor an escaped byte U+DC80..U+DCFF");
    }
    if (i > 0 && cp <= chars_[i - 1]) {
      throw TokenizerError("char tokenizer: vocabulary entry " + std::to_string(i) + " (" + utf8::describe(cp) + ") " +
                           (cp == chars_[i - 1] ? "is a duplicate" : "is out of order") +
                           "; code points must be strictly ascending");
    }
  }
  // Ids beyond int32 cannot happen: strictly ascending code points number at most 0x110000.
  ascii_ids_.fill(kUnknown);
  for (std::size_t i = 0; i < chars_.size() && chars_[i] < 128; ++i) {
    ascii_ids_[chars_[i]] = kFirstChar + static_cast<int32_t>(i);
  }
}

CharTokenizer CharTokenizer::from_corpus(std::string_view corpus, std::size_t max_vocab_size) {
  if (max_vocab_size != 0 && max_vocab_size < static_cast<std::size_t>(kFirstChar)) {
    throw TokenizerError("char tokenizer: max_vocab_size " + std::to_string(max_vocab_size) +
                         " leaves no room for the 3 special ids (use 0 for no limit)");
  }
  // ASCII (most of any corpus) is counted in an array; everything else in a hash map, so that
  // building from a small corpus costs nothing and a large one stays linear.
  std::array<uint64_t, 128> ascii_counts{};
  std::unordered_map<char32_t, uint64_t> other_counts;
  for (std::size_t pos = 0; pos < corpus.size();) {
    const auto byte = static_cast<unsigned char>(corpus[pos]);
    if (byte < 128) {
      ++ascii_counts[byte], ++pos;
    } else {
      ++other_counts[utf8::next_escaped(corpus, pos)];
    }
  }
  std::vector<std::pair<char32_t, uint64_t>> counted;  // (code point, count), ascending code point
  for (char32_t cp = 0; cp < 128; ++cp) {
    if (ascii_counts[cp] != 0) counted.emplace_back(cp, ascii_counts[cp]);
  }
  const std::size_t n_ascii = counted.size();
  counted.insert(counted.end(), other_counts.begin(), other_counts.end());
  std::sort(counted.begin() + static_cast<std::ptrdiff_t>(n_ascii), counted.end());

  const std::size_t keep = max_vocab_size == 0 ? counted.size() : max_vocab_size - kFirstChar;
  if (counted.size() > keep) {
    // Stable on an ascending list, so ties keep the smaller code point first.
    std::stable_sort(counted.begin(), counted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    counted.resize(keep);
    std::sort(counted.begin(), counted.end());
  }
  std::vector<char32_t> chars;
  chars.reserve(counted.size());
  for (const auto& [cp, count] : counted) chars.push_back(cp);
  return CharTokenizer(std::move(chars));
}

int32_t CharTokenizer::id_of(char32_t cp) const {
  if (cp < 128) return ascii_ids_[cp];
  const auto it = std::lower_bound(chars_.begin(), chars_.end(), cp);
  if (it == chars_.end() || *it != cp) return kUnknown;
  return kFirstChar + static_cast<int32_t>(it - chars_.begin());
}

void CharTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  out.reserve(out.size() + text.size());  // an upper bound: at least one byte per character
  for (std::size_t pos = 0; pos < text.size();) {
    const auto byte = static_cast<unsigned char>(text[pos]);
    if (byte < 128) {
      out.push_back(ascii_ids_[byte]);
      ++pos;
    } else {
      out.push_back(id_of(utf8::next_escaped(text, pos)));
    }
  }
}

void CharTokenizer::decode_append(std::span<const int32_t> ids, std::string& out) const {
  const int32_t size = vocab_size();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id >= kFirstChar && id < size) {
      utf8::append_escaped(out, chars_[static_cast<std::size_t>(id - kFirstChar)]);
    } else if (id == kUnknown) {
      utf8::append_utf8(out, utf8::kReplacement);
    } else if (id != kPad && id != kEndOfText) {
      throw_bad_id(ids, i);
    }  // pad and end of text carry no text
  }
}

std::string CharTokenizer::to_json() const {
  std::string out = R"({"type":"char","chars":[)";
  for (std::size_t i = 0; i < chars_.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(static_cast<uint32_t>(chars_[i]));
  }
  out += "]}";
  return out;
}

}  // namespace ssm
