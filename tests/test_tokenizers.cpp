// Tests for tokenizers/: the strict UTF-8 codec with surrogate escape, the byte and character
// tokenizers (ids, round trips, unknown characters, invalid ids), their JSON serialisation
// (round trip and a batch of malformed/hostile inputs that must throw TokenizerError, never
// crash), and the factories. Everything is seeded and runs in well under a second.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tokenizers/byte_tokenizer.h"
#include "tokenizers/char_tokenizer.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/utf8.h"

namespace {

using namespace std::string_literals;
using ssm::ByteTokenizer;
using ssm::CharTokenizer;
using ssm::Tokenizer;
using ssm::TokenizerError;

// Valid text with 1-, 2-, 3- and 4-byte characters.
const std::vector<std::string> kValidSamples = {
    "",
    "hello, world\n\ttabs and \"quotes\" \\ <|endoftext|>",
    "caf\xC3\xA9 na\xC3\xAFve",                      // é ï (2 bytes)
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",          // 日本語 (3 bytes)
    "smile \xF0\x9F\x99\x82!",                       // 🙂 (4 bytes)
    "nul\0inside"s,
    "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF",  // boundaries
};

// Byte strings that are not well-formed UTF-8.
const std::vector<std::string> kInvalidSamples = {
    "\x80",                    // lone continuation bytes
    "\xBF",
    "a\x80" "b\xBF\xBF" "c",
    "\xC0\xAF",                // overlong '/'
    "\xC1\xBF",                // overlong U+007F
    "\xE0\x80\xAF",            // overlong '/' in 3 bytes
    "\xE0\x9F\xBF",            // overlong U+07FF
    "\xF0\x80\x80\xAF",        // overlong '/' in 4 bytes
    "\xF0\x8F\xBF\xBF",        // overlong U+FFFF
    "\xED\xA0\x80",            // surrogate U+D800
    "\xED\xBF\xBF",            // surrogate U+DFFF
    "\xF4\x90\x80\x80",        // U+110000
    "\xF5\x80\x80\x80",        // lead byte beyond U+10FFFF
    "\xFF",
    "\xFE\xFF\xFE",
    "\xC3",                    // truncated at the end
    "\xE6\x97",
    "\xF0\x9F\x99",
    "\xC3" "A",                // bad continuation
    "x\xE6\x97" "y\xF0\x9F" "z\xED\xA0",
};

std::string random_bytes(std::mt19937& rng, std::size_t max_len) {
  std::uniform_int_distribution<std::size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(byte(rng));
  return s;
}

// Text that is biased towards UTF-8 structure (lead bytes followed by continuations), so that
// fuzzing hits valid multi-byte characters as well as every kind of broken one.
std::string random_utf8ish(std::mt19937& rng, std::size_t max_len) {
  static const unsigned char kPool[] = {'a', 'z', ' ', 0x00, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xC3,
                                        0xDF, 0xE0, 0xE6, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
  std::uniform_int_distribution<std::size_t> len(0, max_len);
  std::uniform_int_distribution<std::size_t> pick(0, sizeof kPool - 1);
  std::string s(len(rng), '\0');
  for (char& c : s) c = static_cast<char>(kPool[pick(rng)]);
  return s;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const TokenizerError& e) {
    return e.what();
  }
  return "<no TokenizerError>";
}

// ---------------------------------------------------------------- UTF-8

TEST(TokenizersUtf8, KnownEncodings) {
  std::string out;
  ssm::utf8::append_utf8(out, U'/');
  ssm::utf8::append_utf8(out, U'\u00E9');
  ssm::utf8::append_utf8(out, U'\u65E5');
  ssm::utf8::append_utf8(out, U'\U0001F642');
  EXPECT_EQ(out, "/\xC3\xA9\xE6\x97\xA5\xF0\x9F\x99\x82");
  EXPECT_EQ(ssm::utf8::decode_escaped(out), (std::vector<char32_t>{U'/', 0xE9, 0x65E5, 0x1F642}));
}

// Every code point of planes 0, 1 and 16 and every 17th one in between (the 4-byte path is the
// same arithmetic throughout; the whole range costs ~0.4 s under ASan).
TEST(TokenizersUtf8, ScalarValuesRoundTrip) {
  std::string buf;
  int64_t mismatches = 0;  // counted rather than asserted per value: gtest asserts are slow under ASan
  for (char32_t cp = 0; cp <= ssm::utf8::kMaxCodePoint; cp += (cp >= 0x20000 && cp < 0x100000) ? 17 : 1) {
    if (!ssm::utf8::is_scalar_value(cp)) continue;
    buf.clear();
    ssm::utf8::append_utf8(buf, cp);
    const std::size_t expected_len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    const ssm::utf8::Decoded d = ssm::utf8::decode_one(buf);
    mismatches += buf.size() != expected_len || d.length != expected_len || d.code_point != cp;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(TokenizersUtf8, RejectsInvalidSequences) {
  for (const std::string& s :
       {"\x80"s, "\xBF"s, "\xC0\xAF"s, "\xC1\xBF"s, "\xE0\x80\xAF"s, "\xE0\x9F\xBF"s, "\xF0\x80\x80\xAF"s,
        "\xF0\x8F\xBF\xBF"s, "\xED\xA0\x80"s, "\xED\xBF\xBF"s, "\xF4\x90\x80\x80"s, "\xF5\x80\x80\x80"s, "\xFF"s,
        "\xFE"s, "\xC3"s, "\xE6\x97"s, "\xF0\x9F\x99"s, "\xC3" "A"s, "\xE6\x41\xA5"s, "\xF0\x9F\x99\x41"s, ""s}) {
    EXPECT_EQ(ssm::utf8::decode_one(s).length, 0u) << "accepted an invalid sequence of " << s.size() << " bytes";
    EXPECT_EQ(ssm::utf8::is_valid(s), s.empty());
  }
}

// A view that ends inside a character is truncated even though valid bytes follow in memory
// (the decoder must not read past the view).
TEST(TokenizersUtf8, ViewEndingInsideACharacterIsTruncated) {
  const std::string buf = "\xF0\x9F\x99\x82";  // 🙂
  for (std::size_t n = 1; n < buf.size(); ++n) {
    const std::string_view view(buf.data(), n);
    EXPECT_EQ(ssm::utf8::decode_one(view).length, 0u) << n;
    EXPECT_FALSE(ssm::utf8::is_valid(view)) << n;
    EXPECT_EQ(ssm::utf8::decode_escaped(view).size(), n) << n;  // one escape per byte
    EXPECT_EQ(CharTokenizer::from_corpus(buf).encode(view), std::vector<int32_t>(n, 2)) << n;
  }
}

// Every 2-byte sequence with a non-ASCII lead, and every 3-byte one whose third byte is at a
// boundary (the decoder only asks whether a third byte is in 80..BF): the decoder accepts exactly
// the bytes that the encoder produces for some scalar value (so no overlongs, no surrogates).
TEST(TokenizersUtf8, AcceptsExactlyCanonicalTwoAndThreeByteSequences) {
  std::string expected;
  for (int b0 = 0x80; b0 <= 0xFF; ++b0) {
    for (int b1 = 0; b1 <= 0xFF; ++b1) {
      const std::string two{static_cast<char>(b0), static_cast<char>(b1)};
      const char32_t cp2 = static_cast<char32_t>(((b0 & 0x1F) << 6) | (b1 & 0x3F));
      expected.clear();
      if (ssm::utf8::is_scalar_value(cp2)) ssm::utf8::append_utf8(expected, cp2);
      ASSERT_EQ(ssm::utf8::decode_one(two).length == 2, expected == two) << b0 << " " << b1;
      if (b0 < 0xE0 || b0 > 0xEF) continue;
      for (const int b2 : {0x00, 0x41, 0x7F, 0x80, 0x81, 0x9F, 0xA0, 0xBE, 0xBF, 0xC0, 0xFF}) {
        const std::string three = two + static_cast<char>(b2);
        const char32_t cp3 = static_cast<char32_t>(((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F));
        expected.clear();
        if (ssm::utf8::is_scalar_value(cp3)) ssm::utf8::append_utf8(expected, cp3);
        const ssm::utf8::Decoded d = ssm::utf8::decode_one(three);
        ASSERT_EQ(d.length == 3, expected == three) << b0 << " " << b1 << " " << b2;
        if (d.length == 3) {
          ASSERT_EQ(d.code_point, cp3);
        }
      }
    }
  }
}

TEST(TokenizersUtf8, SampledFourByteSequences) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> lead(0xF0, 0xFF), any(0, 0xFF), cont(0x80, 0xBF);
  std::string expected;
  for (int i = 0; i < 100000; ++i) {
    const bool mostly_valid = i % 2 == 0;  // half the samples use continuation bytes only
    const int b0 = lead(rng), b1 = mostly_valid ? cont(rng) : any(rng), b2 = mostly_valid ? cont(rng) : any(rng),
              b3 = mostly_valid ? cont(rng) : any(rng);
    const std::string s{static_cast<char>(b0), static_cast<char>(b1), static_cast<char>(b2), static_cast<char>(b3)};
    const char32_t cp = static_cast<char32_t>(((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F));
    expected.clear();
    if (b0 <= 0xF7 && ssm::utf8::is_scalar_value(cp)) ssm::utf8::append_utf8(expected, cp);
    ASSERT_EQ(ssm::utf8::decode_one(s).length == 4, expected == s) << b0 << " " << b1 << " " << b2 << " " << b3;
  }
}

TEST(TokenizersUtf8, SurrogateEscapeMatchesPython) {
  // Python: b"a\xe6\x97b\xc0\xaf".decode("utf-8", "surrogateescape") == "a\udce6\udc97b\udcc0\udcaf"
  const std::string s = "a\xE6\x97" "b\xC0\xAF";
  EXPECT_EQ(ssm::utf8::decode_escaped(s), (std::vector<char32_t>{U'a', 0xDCE6, 0xDC97, U'b', 0xDCC0, 0xDCAF}));
  EXPECT_EQ(ssm::utf8::encode_escaped(ssm::utf8::decode_escaped(s)), s);
}

TEST(TokenizersUtf8, EscapeRoundTripFuzz) {
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    const std::string s = i % 2 ? random_bytes(rng, 40) : random_utf8ish(rng, 40);
    const std::vector<char32_t> cps = ssm::utf8::decode_escaped(s);
    for (const char32_t cp : cps) ASSERT_TRUE(ssm::utf8::is_scalar_value(cp) || ssm::utf8::is_escape(cp));
    ASSERT_EQ(ssm::utf8::encode_escaped(cps), s);
  }
}

TEST(TokenizersUtf8, EncoderRejectsNonScalarValues) {
  std::string out;
  EXPECT_THROW(ssm::utf8::append_utf8(out, 0xD800), TokenizerError);
  EXPECT_THROW(ssm::utf8::append_utf8(out, 0xDC80), TokenizerError);  // escapes are not characters
  EXPECT_THROW(ssm::utf8::append_utf8(out, 0x110000), TokenizerError);
  EXPECT_THROW(ssm::utf8::append_escaped(out, 0xDC7F), TokenizerError);  // ASCII is never escaped
  EXPECT_THROW(ssm::utf8::append_escaped(out, 0xD800), TokenizerError);
  EXPECT_TRUE(out.empty());
  ssm::utf8::append_escaped(out, 0xDCFF);
  EXPECT_EQ(out, "\xFF");
}

// ---------------------------------------------------------------- byte tokenizer

TEST(TokenizersByte, IdsAndVocabulary) {
  const ByteTokenizer tok;
  EXPECT_EQ(tok.name(), "byte");
  EXPECT_EQ(tok.vocab_size(), 258);
  EXPECT_EQ(tok.eos_id(), 256);
  EXPECT_EQ(tok.pad_id(), 257);
  EXPECT_EQ(tok.unk_id(), -1);
  EXPECT_TRUE(tok.is_special(256));
  EXPECT_TRUE(tok.is_special(257));
  EXPECT_FALSE(tok.is_special(255));
  EXPECT_FALSE(tok.is_special(-1));
  EXPECT_EQ(tok.encode("A\xC3\xA9\xFF"), (std::vector<int32_t>{65, 0xC3, 0xA9, 255}));
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(TokenizersByte, RoundTripsValidAndInvalidText) {
  const ByteTokenizer tok;
  for (const auto* samples : {&kValidSamples, &kInvalidSamples}) {
    for (const std::string& s : *samples) {
      const std::vector<int32_t> ids = tok.encode(s);
      EXPECT_EQ(ids.size(), s.size());
      EXPECT_EQ(tok.decode(ids), s);
    }
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(tok.decode(tok.encode(all)), all);
}

TEST(TokenizersByte, RandomBytesFuzzRoundTrip) {
  const ByteTokenizer tok;
  std::mt19937 rng(12345);
  for (int i = 0; i < 3000; ++i) {
    const std::string s = random_bytes(rng, 100);
    const std::vector<int32_t> ids = tok.encode(s);
    for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < 256);
    ASSERT_EQ(tok.decode(ids), s);
  }
}

TEST(TokenizersByte, EndOfTextMarker) {
  const ByteTokenizer tok;
  // Plain encode never produces specials: the marker is 13 bytes.
  const std::vector<int32_t> plain = tok.encode("a<|endoftext|>b");
  EXPECT_EQ(plain.size(), 15u);
  for (const int32_t id : plain) EXPECT_LT(id, 256);
  EXPECT_EQ(tok.encode_with_specials("a<|endoftext|>b"), (std::vector<int32_t>{'a', 256, 'b'}));
  EXPECT_EQ(tok.encode_with_specials("<|endoftext|>"), (std::vector<int32_t>{256}));
  EXPECT_EQ(tok.encode_with_specials("x<|endoftext|><|endoftext|>"), (std::vector<int32_t>{'x', 256, 256}));
  EXPECT_EQ(tok.encode_with_specials("<|endoftext|"), tok.encode("<|endoftext|"));
  EXPECT_EQ(tok.decode({'a', 256, 'b', 257, 257}), "ab");  // specials carry no text
}

TEST(TokenizersByte, DecodeOfInvalidIdsThrows) {
  const ByteTokenizer tok;
  for (const int32_t bad : {-1, 258, 1000, INT32_MAX, INT32_MIN}) {
    EXPECT_THROW(tok.decode({65, bad}), TokenizerError) << bad;
  }
  const std::string msg = message_of([&] { tok.decode({65, 66, 300}); });
  EXPECT_NE(msg.find("300"), std::string::npos) << msg;
  EXPECT_NE(msg.find("position 2"), std::string::npos) << msg;
  const int32_t raw[] = {104, 105};
  EXPECT_EQ(tok.decode(std::span<const int32_t>(raw)), "hi");
}

// ---------------------------------------------------------------- char tokenizer

TEST(TokenizersChar, VocabularyIsSortedWithSpecialsFirst) {
  const CharTokenizer tok = CharTokenizer::from_corpus("banana");
  EXPECT_EQ(tok.name(), "char");
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.unk_id(), 2);
  EXPECT_EQ(tok.chars(), (std::vector<char32_t>{U'a', U'b', U'n'}));
  EXPECT_EQ(tok.vocab_size(), 6);
  EXPECT_EQ(tok.encode("nab"), (std::vector<int32_t>{5, 3, 4}));
  EXPECT_EQ(tok.id_of(U'n'), 5);
  EXPECT_EQ(tok.id_of(U'z'), 2);
  EXPECT_TRUE(tok.is_special(0) && tok.is_special(1) && tok.is_special(2));
  EXPECT_FALSE(tok.is_special(3));
}

TEST(TokenizersChar, RoundTripsMultiByteCharacters) {
  std::string corpus;
  for (const std::string& s : kValidSamples) corpus += s;
  const CharTokenizer tok = CharTokenizer::from_corpus(corpus);
  for (const std::string& s : kValidSamples) {
    const std::vector<int32_t> ids = tok.encode(s);
    EXPECT_EQ(ids.size(), ssm::utf8::decode_escaped(s).size());  // one id per character
    for (const int32_t id : ids) EXPECT_GE(id, CharTokenizer::kFirstChar);
    EXPECT_EQ(tok.decode(ids), s);
  }
  EXPECT_EQ(tok.encode("\xF0\x9F\x99\x82").size(), 1u);  // 🙂 is one token
  EXPECT_EQ(tok.encode("\xE6\x97\xA5").size(), 1u);      // 日 is one token
}

TEST(TokenizersChar, InvalidUtf8RoundTripsWhenInTheCorpus) {
  for (const std::string& s : kInvalidSamples) {
    const CharTokenizer tok = CharTokenizer::from_corpus(s);
    const std::vector<int32_t> ids = tok.encode(s);
    for (const int32_t id : ids) EXPECT_NE(id, tok.unk_id());
    EXPECT_EQ(tok.decode(ids), s);
  }
  // Each invalid byte is its own character U+DC00 + byte; the overlong C0 AF is not '/'.
  const CharTokenizer tok = CharTokenizer::from_corpus("\xC0\xAF\xFF" "a\xE6\x97");
  EXPECT_EQ(tok.chars(), (std::vector<char32_t>{U'a', 0xDC97, 0xDCAF, 0xDCC0, 0xDCE6, 0xDCFF}));
  EXPECT_EQ(tok.id_of(U'/'), tok.unk_id());
}

TEST(TokenizersChar, UnknownCharactersMapToUnk) {
  const CharTokenizer tok = CharTokenizer::from_corpus("abc");
  const int32_t unk = tok.unk_id();
  EXPECT_EQ(tok.encode("abz"), (std::vector<int32_t>{3, 4, unk}));
  EXPECT_EQ(tok.encode("a\xC3\xA9\xF0\x9F\x99\x82"), (std::vector<int32_t>{3, unk, unk}));  // é, 🙂
  EXPECT_EQ(tok.encode("\xFF\xFE"), (std::vector<int32_t>{unk, unk}));  // one unk per invalid byte
  // Lossy by design: unknown characters come back as U+FFFD.
  EXPECT_EQ(tok.decode(tok.encode("abz")), "ab\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode({0, 3, 1, 4, 0}), "ab");  // pad and end of text carry no text
}

TEST(TokenizersChar, EmptyCorpus) {
  const CharTokenizer tok = CharTokenizer::from_corpus("");
  EXPECT_EQ(tok.vocab_size(), 3);
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.decode(std::vector<int32_t>{}), "");
  EXPECT_EQ(tok.encode("x\xC3\xA9"), (std::vector<int32_t>{2, 2}));
}

// Random corpora (valid and broken UTF-8): text from the corpus round-trips exactly; other text
// round-trips with each out-of-vocabulary character replaced by U+FFFD.
TEST(TokenizersChar, RandomFuzzRoundTrip) {
  std::mt19937 rng(99);
  for (int i = 0; i < 300; ++i) {
    const std::string corpus = i % 2 ? random_bytes(rng, 200) : random_utf8ish(rng, 200);
    const CharTokenizer tok = CharTokenizer::from_corpus(corpus);
    ASSERT_EQ(tok.decode(tok.encode(corpus)), corpus);
    const std::string other = random_utf8ish(rng, 50);
    std::string expected;
    for (const char32_t cp : ssm::utf8::decode_escaped(other)) {
      ssm::utf8::append_escaped(expected, tok.id_of(cp) == tok.unk_id() ? ssm::utf8::kReplacement : cp);
    }
    ASSERT_EQ(tok.decode(tok.encode(other)), expected);
  }
}

TEST(TokenizersChar, MaxVocabSizeKeepsTheMostFrequent) {
  const std::string corpus = "eddcccbbbaaa";  // a, b, c: 3 each; d: 2; e: 1
  EXPECT_EQ(CharTokenizer::from_corpus(corpus, 3 + 2).chars(), (std::vector<char32_t>{U'a', U'b'}));
  EXPECT_EQ(CharTokenizer::from_corpus(corpus, 3 + 4).chars(), (std::vector<char32_t>{U'a', U'b', U'c', U'd'}));
  EXPECT_EQ(CharTokenizer::from_corpus("zyx", 3 + 2).chars(), (std::vector<char32_t>{U'x', U'y'}));  // ties: lower code point
  EXPECT_EQ(CharTokenizer::from_corpus(corpus, 100).chars().size(), 5u);
  EXPECT_EQ(CharTokenizer::from_corpus(corpus, 3).vocab_size(), 3);
  EXPECT_THROW(CharTokenizer::from_corpus(corpus, 1), TokenizerError);
  EXPECT_THROW(CharTokenizer::from_corpus(corpus, 2), TokenizerError);
  const CharTokenizer small = CharTokenizer::from_corpus(corpus, 3 + 3);
  EXPECT_EQ(small.encode("ade"), (std::vector<int32_t>{3, 2, 2}));
}

TEST(TokenizersChar, EndOfTextMarker) {
  const CharTokenizer tok = CharTokenizer::from_corpus("ab<|endoftext|>");
  EXPECT_EQ(tok.encode_with_specials("a<|endoftext|>b"), (std::vector<int32_t>{tok.id_of(U'a'), 1, tok.id_of(U'b')}));
  EXPECT_EQ(tok.encode("<|endoftext|>").size(), 13u);
  EXPECT_EQ(tok.decode(tok.encode_with_specials("a<|endoftext|>b")), "ab");
}

TEST(TokenizersChar, DecodeOfInvalidIdsThrows) {
  const CharTokenizer tok = CharTokenizer::from_corpus("abc");
  for (const int32_t bad : {-1, 6, 7, INT32_MAX, INT32_MIN}) {
    EXPECT_THROW(tok.decode({3, bad}), TokenizerError) << bad;
  }
  EXPECT_EQ(tok.decode({5}), "c");
  const std::string msg = message_of([&] { tok.decode({6}); });
  EXPECT_NE(msg.find("id 6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0..5"), std::string::npos) << msg;
}

TEST(TokenizersChar, ConstructorValidatesTheVocabulary) {
  EXPECT_THROW(CharTokenizer({U'b', U'a'}), TokenizerError);
  EXPECT_THROW(CharTokenizer({U'a', U'a'}), TokenizerError);
  EXPECT_THROW(CharTokenizer({0xD800}), TokenizerError);
  EXPECT_THROW(CharTokenizer({0xDC7F}), TokenizerError);
  EXPECT_THROW(CharTokenizer({0x110000}), TokenizerError);
  EXPECT_NE(message_of([] { CharTokenizer({U'a', U'a'}); }).find("duplicate"), std::string::npos);
  EXPECT_EQ(CharTokenizer({U'a', 0xDC80, 0x10FFFF}).vocab_size(), 6);
}

// ---------------------------------------------------------------- serialisation

TEST(TokenizersSerialization, ByteRoundTrip) {
  const ByteTokenizer tok;
  EXPECT_EQ(tok.to_json(), R"({"type":"byte"})");
  const std::unique_ptr<Tokenizer> back = ssm::tokenizer_from_json(tok.to_json());
  EXPECT_EQ(back->name(), "byte");
  EXPECT_EQ(back->vocab_size(), 258);
  EXPECT_NE(dynamic_cast<const ByteTokenizer*>(back.get()), nullptr);
}

TEST(TokenizersSerialization, CharRoundTrip) {
  EXPECT_EQ(CharTokenizer::from_corpus("banana").to_json(), R"({"type":"char","chars":[97,98,110]})");
  EXPECT_EQ(CharTokenizer::from_corpus("").to_json(), R"({"type":"char","chars":[]})");

  std::string corpus;
  for (const auto* samples : {&kValidSamples, &kInvalidSamples}) {
    for (const std::string& s : *samples) corpus += s;
  }
  const CharTokenizer tok = CharTokenizer::from_corpus(corpus);
  const std::unique_ptr<Tokenizer> back = ssm::tokenizer_from_json(tok.to_json());
  const auto* as_char = dynamic_cast<const CharTokenizer*>(back.get());
  ASSERT_NE(as_char, nullptr);
  EXPECT_EQ(as_char->chars(), tok.chars());
  EXPECT_EQ(back->to_json(), tok.to_json());
  EXPECT_EQ(back->encode(corpus), tok.encode(corpus));
  EXPECT_EQ(back->decode(back->encode(corpus)), corpus);
}

TEST(TokenizersSerialization, AcceptsAnyKeyOrderAndWhitespace) {
  const auto tok = ssm::tokenizer_from_json(" {\n \"chars\" : [ 97 , 128578 ] ,\t\"type\" : \"char\" }\r\n");
  EXPECT_EQ(tok->vocab_size(), 5);
  EXPECT_EQ(tok->encode("a\xF0\x9F\x99\x82"), (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(ssm::tokenizer_from_json(R"({"type":"\u0062yte"})")->name(), "byte");
}

TEST(TokenizersSerialization, MalformedInputThrows) {
  const std::vector<std::string> bad = {
      "",
      "   ",
      "byte",
      "{",
      R"({"type":"byte")",                             // truncated
      R"({"type":"byte"}x)",                           // trailing garbage
      R"({"type":"byte"}{})",
      R"({"type":"char","chars":[97,98)",              // truncated array
      R"({"type":"char","chars":[97,)",
      R"({"type":"char","chars":[97,]})",              // trailing comma
      R"({"type":"char","chars":[97 98]})",
      R"([])",                                         // wrong top-level type
      R"(null)",
      R"("byte")",
      R"(42)",
      R"({})",                                         // missing type
      R"({"type":5})",                                 // wrong type of "type"
      R"({"type":null})",
      R"({"type":"word"})",                            // unknown type
      R"({"type":"BYTE"})",
      R"({"type":"byte","chars":[]})",                 // extra key
      R"({"type":"byte","type":"byte"})",              // duplicate key
      R"({"type":"char"})",                            // missing chars
      R"({"type":"char","chars":97})",                 // chars not an array
      R"({"type":"char","chars":"abc"})",
      R"({"type":"char","chars":{}})",
      R"({"type":"char","chars":["a"]})",              // non-numeric code points
      R"({"type":"char","chars":[true]})",
      R"({"type":"char","chars":[[97]]})",
      R"({"type":"char","chars":[null]})",
      R"({"type":"char","chars":[97.0]})",             // not an integer
      R"({"type":"char","chars":[1e2]})",
      R"({"type":"char","chars":[0x61]})",
      R"({"type":"char","chars":[097]})",              // leading zero
      R"({"type":"char","chars":[+97]})",
      R"({"type":"char","chars":[-]})",
      R"({"type":"char","chars":[97,97]})",            // duplicate
      R"({"type":"char","chars":[98,97]})",            // not ascending
      R"({"type":"char","chars":[-1]})",               // out of range
      R"({"type":"char","chars":[1114112]})",
      R"({"type":"char","chars":[4294967393]})",       // 2^32 + 'a' must not wrap to 'a'
      R"({"type":"char","chars":[99999999999999999999999]})",
      R"({"type":"char","chars":[-9223372036854775809]})",
      R"({"type":"char","chars":[55296]})",            // surrogate U+D800
      R"({"type":"char","chars":[56447]})",            // U+DC7F is not an escape
      R"({"type":"char","chars":[97],"extra":1})",
      R"({"type":"char","chars":[97],"chars":[98]})",
      R"({"type":"char" "chars":[97]})",
      R"({type:"char","chars":[97]})",
      R"({'type':'char'})",
      "{\"type\":\"by\nte\"}",                         // raw control character in a string
      R"({"type":"by\xte"})",                          // bad escape
      R"({"type":"\u00"})",                            // truncated \u
      R"({"type":"\uD800"})",                          // lone surrogate escapes
      R"({"type":"\uDC00"})",
      "{\"type\":\"\xFF\"}",                           // invalid UTF-8 in a string
      "{\"type\":\"byte\0\"}"s,
      R"({"type":tru})",
      R"({"type":"byte)",
  };
  for (const std::string& s : bad) {
    EXPECT_THROW(ssm::tokenizer_from_json(s), TokenizerError) << "accepted: " << s;
  }
}

TEST(TokenizersSerialization, ErrorMessagesNameTheProblem) {
  auto msg = [](const std::string& json) { return message_of([&] { ssm::tokenizer_from_json(json); }); };
  EXPECT_NE(msg(R"({"type":"word"})").find("word"), std::string::npos);
  EXPECT_NE(msg(R"({"type":"char","chars":[1114112]})").find("1114112"), std::string::npos);
  EXPECT_NE(msg(R"({"type":"char","chars":[97,97]})").find("duplicate"), std::string::npos);
  EXPECT_NE(msg(R"({"type":"char","chars":["a"]})").find("chars[0]"), std::string::npos);
  EXPECT_NE(msg(R"({"type":"byte")").find("offset"), std::string::npos);
}

TEST(TokenizersSerialization, DeepNestingAndHugeInputsThrowCleanly) {
  EXPECT_THROW(ssm::tokenizer_from_json(std::string(100000, '[')), TokenizerError);
  EXPECT_THROW(ssm::tokenizer_from_json(std::string(100000, '{')), TokenizerError);
  EXPECT_THROW(ssm::tokenizer_from_json(R"({"type":"char","chars":)" + std::string(50000, '[') +
                                        std::string(50000, ']') + "}"),
               TokenizerError);
  EXPECT_THROW(ssm::tokenizer_from_json(R"({"type":"char","chars":[)" + std::string(100000, '9') + "]}"),
               TokenizerError);
}

// Random mutations of a valid serialisation either parse into a tokenizer that re-serialises
// consistently or throw TokenizerError; any other exception or a crash (ASan) fails the test.
TEST(TokenizersSerialization, MutationFuzz) {
  const std::string valid = CharTokenizer::from_corpus("ab\xC3\xA9\xF0\x9F\x99\x82\xFF" "z").to_json();
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> byte(0, 255), op(0, 3);
  const std::string interesting = "{}[],:\"\\-0123456789eE.tu ";
  int parsed = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string s = valid;
    const int edits = 1 + i % 3;
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = std::uniform_int_distribution<std::size_t>(0, s.size() - 1)(rng);
      const char c = byte(rng) < 200 ? interesting[static_cast<std::size_t>(byte(rng)) % interesting.size()]
                                     : static_cast<char>(byte(rng));
      switch (op(rng)) {
        case 0: s.erase(at, 1); break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        case 2: s[at] = c; break;
        default: s.resize(at); break;
      }
    }
    try {
      const std::unique_ptr<Tokenizer> tok = ssm::tokenizer_from_json(s);
      ++parsed;
      ASSERT_EQ(ssm::tokenizer_from_json(tok->to_json())->to_json(), tok->to_json());
    } catch (const TokenizerError&) {
    }
  }
  EXPECT_GT(parsed, 0);  // some mutations (e.g. whitespace, a changed code point) stay valid
}

// ---------------------------------------------------------------- factories and the interface

// What a task does: it only sees the interface.
std::string round_trip(const Tokenizer& tok, const std::string& text) { return tok.decode(tok.encode(text)); }

TEST(TokenizersFactory, MakeTokenizer) {
  const std::string corpus = "hello w\xC3\xB6rld \xF0\x9F\x99\x82";
  const auto byte = ssm::make_tokenizer("byte");
  const auto chr = ssm::make_tokenizer("char", corpus);
  EXPECT_EQ(byte->name(), "byte");
  EXPECT_EQ(chr->name(), "char");
  EXPECT_EQ(round_trip(*byte, corpus), corpus);
  EXPECT_EQ(round_trip(*chr, corpus), corpus);
  EXPECT_EQ(ssm::make_tokenizer("char", corpus, 5)->vocab_size(), 5);
  EXPECT_THROW(ssm::make_tokenizer("bpe"), TokenizerError);
  EXPECT_THROW(ssm::make_tokenizer(""), TokenizerError);
  for (const Tokenizer* tok : {byte.get(), chr.get()}) {
    EXPECT_EQ(ssm::tokenizer_from_json(tok->to_json())->to_json(), tok->to_json());
    EXPECT_EQ(tok->decode({tok->eos_id(), tok->pad_id()}), "");
    EXPECT_THROW(tok->decode({tok->vocab_size()}), TokenizerError);
  }
}

}  // namespace
