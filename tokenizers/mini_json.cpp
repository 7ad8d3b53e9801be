// tokenizers/mini_json.cpp — recursive-descent reader; see mini_json.h for what it accepts.
#include "tokenizers/mini_json.h"

#include <limits>

#include "tokenizers/error.h"
#include "tokenizers/utf8.h"

namespace ssm::mini_json {

const Value* Value::find(std::string_view key) const {
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return "boolean";
    case Value::Kind::Integer: return "integer";
    case Value::Kind::String: return "string";
    case Value::Kind::Array: return "array";
    case Value::Kind::Object: return "object";
  }
  return "?";
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw TokenizerError("tokenizer JSON: " + what + " at offset " + std::to_string(pos_));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  void expect(char c) {
    if (at_end() || peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  Value value(int depth) {
    skip_space();
    if (at_end()) fail("unexpected end of input, expected a value");
    Value v;
    switch (peek()) {
      case '{': v = object(depth + 1); break;
      case '[': v = array(depth + 1); break;
      case '"': v.kind = Value::Kind::String, v.string = string(); break;
      case 't': literal("true"), v.kind = Value::Kind::Bool, v.boolean = true; break;
      case 'f': literal("false"), v.kind = Value::Kind::Bool; break;
      case 'n': literal("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          v.kind = Value::Kind::Integer, v.integer = integer();
        } else {
          fail("unexpected character, expected a value");
        }
    }
    return v;
  }

  Value object(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    expect('{');
    Value v;
    v.kind = Value::Kind::Object;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_space();
      if (peek() != '"') fail("expected a string key");
      const std::size_t key_pos = pos_;
      std::string key = string();
      if (v.find(key) != nullptr) {
        pos_ = key_pos;
        fail("duplicate key \"" + key + "\"");
      }
      skip_space();
      expect(':');
      v.items.push_back(value(depth));
      v.keys.push_back(std::move(key));
      skip_space();
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      expect(',');
    }
  }

  Value array(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    expect('[');
    Value v;
    v.kind = Value::Kind::Array;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      v.items.push_back(value(depth));
      skip_space();
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      expect(',');
    }
  }

  int64_t integer() {
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail("expected a digit");
    if (peek() == '0' && pos_ + 1 < text_.size() && text_[pos_ + 1] >= '0' && text_[pos_ + 1] <= '9') {
      fail("leading zeros are not allowed");
    }
    // Accumulate as a negative number so that INT64_MIN is representable.
    int64_t n = 0;
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      const int digit = peek() - '0';
      if (n < (kMin + digit) / 10) fail("integer out of range");
      n = n * 10 - digit;
      ++pos_;
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E') fail("only integers are allowed");
    if (negative) return n;
    if (n == kMin) fail("integer out of range");
    return -n;
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("invalid hex digit in \\u escape");
    }
    return v;
  }

  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character in string");
      if (c == '\\') {
        ++pos_;
        escape(out);
      } else if (c < 0x80) {
        out.push_back(static_cast<char>(c)), ++pos_;
      } else {
        const utf8::Decoded d = utf8::decode_one(text_.substr(pos_));
        if (d.length == 0) fail("invalid UTF-8 in string");
        out.append(text_.substr(pos_, d.length)), pos_ += d.length;
      }
    }
  }

  void escape(std::string& out) {
    if (at_end()) fail("unterminated escape");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out.push_back('"'); return;
      case '\\': out.push_back('\\'); return;
      case '/': out.push_back('/'); return;
      case 'b': out.push_back('\b'); return;
      case 'f': out.push_back('\f'); return;
      case 'n': out.push_back('\n'); return;
      case 'r': out.push_back('\r'); return;
      case 't': out.push_back('\t'); return;
      case 'u': break;
      default: --pos_, fail("invalid escape");
    }
    char32_t cp = hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // must be followed by \uDC00..\uDFFF
      if (text_.substr(pos_, 2) != "\\u") fail("high surrogate not followed by a low surrogate");
      pos_ += 2;
      const char32_t low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate not followed by a low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    utf8::append_utf8(out, cp);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

Value parse(std::string_view text) { return Parser(text).document(); }

}  // namespace ssm::mini_json
