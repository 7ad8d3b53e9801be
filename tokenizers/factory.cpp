// tokenizers/factory.cpp — tokenizer_from_json and make_tokenizer (declared in tokenizer.h).
//
// Reading a checkpoint's metadata is where hostile input arrives, so every field is checked
// before it is used: the JSON layer (mini_json) rejects malformed syntax, this file rejects wrong
// shapes (missing/extra keys, wrong kinds, code points outside 0..U+10FFFF), and the CharTokenizer
// constructor rejects surrogates, duplicates and out-of-order entries.
#include <algorithm>
#include <initializer_list>

#include "tokenizers/byte_tokenizer.h"
#include "tokenizers/char_tokenizer.h"
#include "tokenizers/mini_json.h"
#include "tokenizers/utf8.h"

namespace ssm {
namespace {

using mini_json::Value;

// Rejects keys a reader would silently ignore: a newer or corrupted format must fail loudly.
void require_only_keys(const Value& root, std::string_view type, std::initializer_list<std::string_view> allowed) {
  for (const std::string& key : root.keys) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      throw TokenizerError("tokenizer JSON: unexpected key \"" + key + "\" for type \"" + std::string(type) + "\"");
    }
  }
}

std::unique_ptr<Tokenizer> char_from_json(const Value& root) {
  require_only_keys(root, "char", {"type", "chars"});
  const Value* chars = root.find("chars");
  if (chars == nullptr) throw TokenizerError("tokenizer JSON: type \"char\" needs a \"chars\" array");
  if (chars->kind != Value::Kind::Array) {
    throw TokenizerError(std::string("tokenizer JSON: \"chars\" must be an array, got ") + mini_json::kind_name(chars->kind));
  }
  std::vector<char32_t> code_points;
  code_points.reserve(chars->items.size());
  for (std::size_t i = 0; i < chars->items.size(); ++i) {
    const Value& item = chars->items[i];
    if (item.kind != Value::Kind::Integer) {
      throw TokenizerError("tokenizer JSON: chars[" + std::to_string(i) + "] must be an integer code point, got " +
                           mini_json::kind_name(item.kind));
    }
    if (item.integer < 0 || item.integer > static_cast<int64_t>(utf8::kMaxCodePoint)) {
      throw TokenizerError("tokenizer JSON: chars[" + std::to_string(i) + "] = " + std::to_string(item.integer) +
                           " is outside the code point range 0..1114111");
    }
    code_points.push_back(static_cast<char32_t>(item.integer));
  }
  return std::make_unique<CharTokenizer>(std::move(code_points));
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json) {
  const Value root = mini_json::parse(json);
  if (root.kind != Value::Kind::Object) {
    throw TokenizerError(std::string("tokenizer JSON: expected an object, got ") + mini_json::kind_name(root.kind));
  }
  const Value* type = root.find("type");
  if (type == nullptr) throw TokenizerError("tokenizer JSON: missing \"type\"");
  if (type->kind != Value::Kind::String) {
    throw TokenizerError(std::string("tokenizer JSON: \"type\" must be a string, got ") + mini_json::kind_name(type->kind));
  }
  if (type->string == "byte") {
    require_only_keys(root, "byte", {"type"});
    return std::make_unique<ByteTokenizer>();
  }
  if (type->string == "char") return char_from_json(root);
  throw TokenizerError("tokenizer JSON: unknown type \"" + type->string + "\" (expected \"byte\" or \"char\")");
}

std::unique_ptr<Tokenizer> make_tokenizer(std::string_view name, std::string_view corpus, std::size_t max_vocab_size) {
  if (name == "byte") return std::make_unique<ByteTokenizer>();
  if (name == "char") return std::make_unique<CharTokenizer>(CharTokenizer::from_corpus(corpus, max_vocab_size));
  throw TokenizerError("unknown tokenizer \"" + std::string(name) + "\" (expected \"byte\" or \"char\")");
}

}  // namespace ssm
