// Token files and corpora: the cached tokenisation equals tokenising the text directly, piece boundaries
// included; damaged files are refused with a clear error; text sources split at a line.
#include <gtest/gtest.h>

#include <filesystem>

#include "task_test_helpers.h"
#include "tasks/corpus.h"
#include "tasks/token_data.h"
#include "tensor/error.h"

using namespace ssm;
using namespace ssm::tasks;
using ssm::testing::read_file;
using ssm::testing::ScopedTempDir;
using ssm::testing::write_file;

namespace {

std::vector<int32_t> all_ids(const TokenData& data) {
  std::vector<int32_t> ids(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) ids[static_cast<size_t>(i)] = data[i];
  return ids;
}

// Stories separated by marker lines, as TinyStories-train.txt has them; some non-ASCII text too.
std::string stories(int count) {
  std::string text;
  for (int i = 0; i < count; ++i)
    text += "Story " + std::to_string(i) + ": Lily saw a b\xc3\xbc" "g.\nThe end.\n<|endoftext|>\n";
  return text;
}

}  // namespace

TEST(TokenData, WriteThenOpenRoundTripsBothWidths) {
  ScopedTempDir dir;
  const auto bytes = make_tokenizer("byte");
  const std::vector<int32_t> ids{0, 255, 256, 257, 65, 10};
  write_token_file(dir / "a.tok", ids, 123, *bytes);
  const TokenData narrow = TokenData::open(dir / "a.tok");
  EXPECT_EQ(all_ids(narrow), ids);
  EXPECT_EQ(narrow.source_bytes(), 123);
  EXPECT_EQ(narrow.tokenizer_json(), bytes->to_json());
  // 2 bytes per id for a byte vocabulary: header (40) + JSON, padded to 8 bytes, + 12.
  EXPECT_EQ(std::filesystem::file_size(dir / "a.tok"), (40 + bytes->to_json().size() + 7) / 8 * 8 + 12);
}

TEST(TokenData, DamagedFilesAreRefusedNamingTheFile) {
  ScopedTempDir dir;
  const auto bytes = make_tokenizer("byte");
  write_token_file(dir / "good.tok", {1, 2, 3, 4}, 4, *bytes);
  const std::string good = read_file(dir / "good.tok");
  for (size_t cut : {size_t{0}, size_t{7}, size_t{30}, good.size() - 1}) {
    write_file(dir / "cut.tok", good.substr(0, cut));
    try {
      TokenData::open(dir / "cut.tok");
      ADD_FAILURE() << "a file cut at " << cut << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.tok"), std::string::npos) << e.what();
    }
  }
  std::string bad_width = good;
  bad_width[8] = 3;
  write_file(dir / "width.tok", bad_width);
  EXPECT_THROW(TokenData::open(dir / "width.tok"), Error);
  EXPECT_THROW(TokenData::open(dir / "missing.tok"), Error);
}

TEST(TokenData, CachedTokenisationEqualsDirectEncodingAndIsReused) {
  ScopedTempDir dir;
  const std::string text = stories(50);
  write_file(dir / "corpus.txt", text);
  const auto bytes = make_tokenizer("byte");
  const TokenData data = tokenize_cached(dir / "corpus.txt", 0, -1, *bytes, dir / "cache", "test");
  EXPECT_EQ(all_ids(data), bytes->encode_with_specials(text));
  EXPECT_EQ(data.source_bytes(), static_cast<int64_t>(text.size()));

  // The second call opens the same cached file instead of writing it again.
  const auto token_files = std::filesystem::directory_iterator(dir / "cache/tokens");
  const auto cached = token_files->path();
  const auto written = std::filesystem::last_write_time(cached);
  std::filesystem::last_write_time(cached, written - std::chrono::hours(1));
  const TokenData again = tokenize_cached(dir / "corpus.txt", 0, -1, *bytes, dir / "cache", "test");
  EXPECT_EQ(std::filesystem::last_write_time(cached), written - std::chrono::hours(1));
  EXPECT_EQ(all_ids(again), all_ids(data));

  // A byte range, and another tokenizer, are other cache entries.
  const TokenData head = tokenize_cached(dir / "corpus.txt", 10, 200, *bytes, dir / "cache", "test");
  EXPECT_EQ(all_ids(head), bytes->encode_with_specials(std::string_view(text).substr(10, 190)));
  const auto chars = make_tokenizer("char", text);
  const TokenData by_char = tokenize_cached(dir / "corpus.txt", 0, -1, *chars, dir / "cache", "test");
  EXPECT_EQ(all_ids(by_char), chars->encode_with_specials(text));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir / "cache/tokens"), {}), 3);
}

TEST(TokenData, PiecesCutAtLinesKeepMarkersAndCharactersWhole) {
  // More than one 16 MiB read: the pieces are cut at line breaks, so the ids equal one whole encoding.
  ScopedTempDir dir;
  const std::string unit = stories(1);
  std::string text;
  while (text.size() < (17u << 20)) text += unit;
  write_file(dir / "big.txt", text);
  const auto bytes = make_tokenizer("byte");
  const TokenData data = tokenize_cached(dir / "big.txt", 0, -1, *bytes, dir / "cache", "big");
  EXPECT_EQ(all_ids(data), bytes->encode_with_specials(text));
}

TEST(TokenData, TextBytesCountsTheMarkerAnEndOfTextReplaced) {
  const auto bytes = make_tokenizer("byte");
  const std::vector<int32_t> ids = bytes->encode_with_specials("ab<|endoftext|>c\xc3\xbc");
  EXPECT_EQ(text_bytes(*bytes, ids), 2 + 13 + 3);
}

TEST(Corpus, TextSourceHoldsOutTheEndFromALineStart) {
  ScopedTempDir dir;
  const std::string text = stories(40);
  write_file(dir / "t.txt", text);
  DataSpec data;
  data.name = "t";
  data.kind = "text";
  data.path = dir / "t.txt";
  data.valid_fraction = 0.25;
  const TextSplits splits = locate_text(data);
  EXPECT_EQ(splits.train.begin, 0);
  EXPECT_EQ(splits.train.end, splits.valid.begin);
  EXPECT_EQ(splits.valid.end, static_cast<int64_t>(text.size()));
  EXPECT_EQ(text[static_cast<size_t>(splits.valid.begin) - 1], '\n');
  EXPECT_NEAR(double(splits.valid.begin), 0.75 * double(text.size()), 60.0);

  data.valid_path = dir / "v.txt";
  write_file(data.valid_path, "valid text\n");
  const TextSplits explicit_valid = locate_text(data);
  EXPECT_EQ(explicit_valid.train.end, -1);
  EXPECT_EQ(explicit_valid.valid.path, data.valid_path);
}

TEST(Corpus, ErrorsNameWhatIsMissing) {
  ScopedTempDir dir;
  DataSpec text;
  text.name = "mine";
  text.kind = "text";
  text.path = dir / "nope.txt";
  try {
    locate_text(text);
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos) << e.what();
  }
  DataSpec local;
  local.kind = "tinystories";
  local.local_dir = dir.path();
  try {
    locate_text(local);
    ADD_FAILURE() << "an empty local_dir was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TinyStories-train.txt"), std::string::npos) << e.what();
  }
}

TEST(Corpus, LocalTinyStoriesSampleLoadsAndShortSplitsAreRefused) {
  ScopedTempDir dir;
  ssm::testing::ScopedEnv cache("SSM_CACHE", dir.path());
  DataSpec data;
  data.name = "sample";
  data.kind = "tinystories";
  data.local_dir = SSM_SHARED_DIR "/data/tinystories";
  data.max_train_bytes = 20000;
  data.max_valid_bytes = 5000;
  const TextSplits splits = locate_text(data);
  EXPECT_NE(splits.train.path.find("TinyStories-train-head.txt"), std::string::npos);
  const auto bytes = make_tokenizer("byte");
  const Corpus corpus = load_corpus(splits, *bytes, 64, "sample");
  EXPECT_EQ(corpus.valid.source_bytes(), 5000);
  EXPECT_EQ(corpus.valid.size(), 5000);  // no markers in the valid head: one id per byte
  EXPECT_LT(corpus.train.size(), 20000);  // each "<|endoftext|>" became one id
  try {
    load_corpus(splits, *bytes, 6000, "sample");
    ADD_FAILURE() << "a validation split shorter than one window was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid split has 5000 tokens"), std::string::npos) << e.what();
  }
}
