// tokenizers/mini_json.h — a small, strict JSON reader for the tokenizers' serialised form.
//
// tokenizers/ must not depend on other libraries, and the format it reads is tiny (an object of
// strings and an array of integers), so this parser is written for exactly that: it reads RFC 8259
// JSON except that numbers must be integers (no fraction or exponent) that fit in int64.
// Strings must be valid UTF-8; \u escapes (surrogate pairs included) are decoded. Objects keep
// their keys in document order and reject duplicate keys. Nesting is capped at kMaxDepth so a
// hostile "[[[[..." cannot exhaust the stack. Every error throws TokenizerError naming what was
// expected and the byte offset; nothing else is thrown (apart from std::bad_alloc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ssm::mini_json {

inline constexpr int kMaxDepth = 32;

struct Value {
  enum class Kind { Null, Bool, Integer, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Value> items;        // Array elements, or Object values (parallel to keys)
  std::vector<std::string> keys;   // Object keys, unique, in document order

  // The member named `key` of an Object, or nullptr.
  const Value* find(std::string_view key) const;
};

// "null", "boolean", "integer", "string", "array", "object".
const char* kind_name(Value::Kind kind);

// Parses a whole document (surrounding whitespace allowed, nothing else after the value).
Value parse(std::string_view text);

}  // namespace ssm::mini_json
