// tokenizers/utf8.cpp — see utf8.h for the contract (strict decoding, surrogate escape).
#include "tokenizers/utf8.h"

#include <cstdio>

#include "tokenizers/error.h"

namespace ssm::utf8 {

Decoded decode_one(std::string_view bytes) {
  if (bytes.empty()) return {};
  const auto b0 = static_cast<unsigned char>(bytes[0]);
  if (b0 < 0x80) return {b0, 1};

  // The lead byte fixes the length and its payload bits. Only the second byte has a range other
  // than 80..BF, and narrowing it is what rejects overlongs (E0, F0), surrogates (ED) and values
  // above U+10FFFF (F4). C0/C1 could only start overlong 2-byte forms, F5..FF only values above
  // U+10FFFF, and 80..BF are continuation bytes: none of them can start a sequence.
  std::size_t length = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // below: U+0000..U+07FF encoded in three bytes (overlong)
    if (b0 == 0xED) hi = 0x9F;  // above: U+D800..U+DFFF (surrogates)
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // below: U+0000..U+FFFF encoded in four bytes (overlong)
    if (b0 == 0xF4) hi = 0x8F;  // above: beyond U+10FFFF
  } else {
    return {};
  }
  if (bytes.size() < length) return {};  // truncated by the end of input
  for (std::size_t i = 1; i < length; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < lo || b > hi) return {};
    lo = 0x80, hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, length};
}

char32_t next_escaped(std::string_view text, std::size_t& pos) {
  const Decoded d = decode_one(text.substr(pos));
  if (d.length != 0) {
    pos += d.length;
    return d.code_point;
  }
  return kEscapeBase + static_cast<unsigned char>(text[pos++]);
}

std::vector<char32_t> decode_escaped(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) out.push_back(next_escaped(text, pos));
  return out;
}

bool is_valid(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const Decoded d = decode_one(text.substr(pos));
    if (d.length == 0) return false;
    pos += d.length;
  }
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if (!is_scalar_value(cp)) throw TokenizerError("utf8: cannot encode " + describe(cp) + ", not a Unicode scalar value");
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_escaped(std::string& out, char32_t cp) {
  if (is_escape(cp)) {
    out.push_back(static_cast<char>(cp - kEscapeBase));
  } else {
    append_utf8(out, cp);
  }
}

std::string encode_escaped(const std::vector<char32_t>& code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (const char32_t cp : code_points) append_escaped(out, cp);
  return out;
}

std::string describe(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

}  // namespace ssm::utf8
