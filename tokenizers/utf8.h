// tokenizers/utf8.h — a strict UTF-8 decoder/encoder with Python-style "surrogateescape".
//
// Decoding accepts exactly the well-formed sequences of the Unicode standard (Table 3-7):
// overlong forms (C0 AF, E0 80 AF, ...), UTF-16 surrogates (ED A0 80 ...), values above U+10FFFF
// (F4 90 ..., F5..FF) and sequences cut short (by a wrong byte or by the end of input) are invalid.
//
// Surrogate escape: so that every byte string round-trips through a sequence of code points, a
// byte b (0x80..0xFF) that does not start a well-formed sequence becomes the code point
// U+DC00 + b, i.e. one of U+DC80..U+DCFF. Those are lone low surrogates, which well-formed UTF-8
// can never produce, so they cannot collide with real characters; encoding turns them back into
// the raw byte. Bytes 0x00..0x7F are always valid, so U+DC00..U+DC7F are never escapes.
// After an invalid byte, decoding resumes at the very next byte (a truncated "E6 97" followed by
// "a" gives U+DCE6 U+DC97 'a'), which is what Python does too.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ssm::utf8 {

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;
inline constexpr char32_t kEscapeBase = 0xDC00;      // invalid byte b <-> U+DC00 + b
inline constexpr char32_t kReplacement = 0xFFFD;     // U+FFFD REPLACEMENT CHARACTER

// A Unicode scalar value: 0..U+10FFFF minus the surrogates U+D800..U+DFFF.
constexpr bool is_scalar_value(char32_t cp) { return cp <= kMaxCodePoint && (cp < 0xD800 || cp > 0xDFFF); }
// One of U+DC80..U+DCFF, the code points standing for invalid bytes 0x80..0xFF.
constexpr bool is_escape(char32_t cp) { return cp >= kEscapeBase + 0x80 && cp <= kEscapeBase + 0xFF; }

struct Decoded {
  char32_t code_point = 0;
  std::size_t length = 0;  // bytes consumed; 0 when `bytes` does not start with a well-formed sequence
};

// Decodes the well-formed sequence at the start of `bytes` (length 0 when there is none, or when
// `bytes` is empty).
Decoded decode_one(std::string_view bytes);

// The code point starting at text[pos] with invalid bytes escaped; advances pos by 1..4.
// Precondition: pos < text.size().
char32_t next_escaped(std::string_view text, std::size_t& pos);

// Every code point of `text`, invalid bytes escaped. Never throws for any input.
std::vector<char32_t> decode_escaped(std::string_view text);

// True when `text` is entirely well-formed UTF-8.
bool is_valid(std::string_view text);

// Appends the UTF-8 encoding of a scalar value; throws TokenizerError for anything else.
void append_utf8(std::string& out, char32_t cp);

// Appends a scalar value as UTF-8 and an escape code point as its raw byte (the inverse of
// next_escaped); throws TokenizerError for other surrogates and values above U+10FFFF.
void append_escaped(std::string& out, char32_t cp);

// The inverse of decode_escaped: encode_escaped(decode_escaped(s)) == s for every byte string s.
std::string encode_escaped(const std::vector<char32_t>& code_points);

// "U+00E9" style, for error messages.
std::string describe(char32_t cp);

}  // namespace ssm::utf8
