// tasks/corpus.cpp — locating, splitting and tokenising the text of a data source.
#include "tasks/corpus.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tasks/download.h"
#include "tensor/error.h"

namespace ssm::tasks {
namespace {

namespace fs = std::filesystem;

int64_t file_size_or_throw(const std::string& path, const std::string& what) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  SSM_CHECK(!error, what, ": cannot read ", path, ": ", error.message());
  return static_cast<int64_t>(size);
}

// The file of a TinyStories split inside a local folder: the full file, else the sample's -head.txt.
std::string local_tinystories(const std::string& dir, const std::string& split) {
  const std::string stem = dir + "/TinyStories-" + split;
  for (const std::string& candidate : {stem + ".txt", stem + "-head.txt"}) {
    if (fs::exists(candidate)) return candidate;
  }
  throw Error("data.local_dir " + dir + " holds neither TinyStories-" + split + ".txt nor TinyStories-" + split +
              "-head.txt");
}

// The first byte after the line break at or after `offset` (the file's size when there is none).
int64_t next_line_start(const std::string& path, int64_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(offset);
  int64_t position = offset;
  for (char c; in.get(c);) {
    ++position;
    if (c == '\n') return position;
  }
  return position;
}

}  // namespace

TextSplits locate_text(const DataSpec& data) {
  TextSplits splits;
  if (data.kind == "tinystories") {
    for (auto [split, slice, limit] : {std::tuple{"train", &splits.train, data.max_train_bytes},
                                       std::tuple{"valid", &splits.valid, data.max_valid_bytes}}) {
      slice->path = data.local_dir.empty() ? fetch_tinystories(split) : local_tinystories(data.local_dir, split);
      slice->end = limit > 0 ? limit : -1;
    }
  } else if (data.kind == "text") {
    SSM_CHECK(!data.path.empty(), "data '", data.name, "': a text source needs a path (--text-file PATH)");
    const int64_t size = file_size_or_throw(data.path, "data '" + data.name + "'");
    splits.train.path = data.path;
    if (!data.valid_path.empty()) {
      file_size_or_throw(data.valid_path, "data '" + data.name + "'");
      splits.valid.path = data.valid_path;
    } else {
      // Hold out the end: the last valid_fraction of the bytes, starting at a line.
      const int64_t cut = next_line_start(data.path, static_cast<int64_t>(double(size) * (1.0 - data.valid_fraction)));
      splits.train.end = cut;
      splits.valid = {data.path, cut, size};
    }
  } else {
    throw Error("data '" + data.name + "' is of kind \"" + data.kind + "\", which holds no text");
  }
  return splits;
}

std::unique_ptr<Tokenizer> build_tokenizer(const ModelSpec& model, const TextSlice& training_text) {
  if (model.tokenizer != "char") return make_tokenizer(model.tokenizer);
  // The vocabulary: every character of the first 64 MiB of the training text (the rest maps to "unknown").
  constexpr int64_t kVocabularySample = 64 << 20;
  const int64_t size = file_size_or_throw(training_text.path, "char tokenizer");
  const int64_t end = training_text.end < 0 ? size : std::min(training_text.end, size);
  std::string sample(static_cast<size_t>(std::min(end - training_text.begin, kVocabularySample)), '\0');
  std::ifstream in(training_text.path, std::ios::binary);
  in.seekg(training_text.begin);
  in.read(sample.data(), static_cast<std::streamsize>(sample.size()));
  return make_tokenizer("char", sample, static_cast<size_t>(model.char_vocab_limit));
}

Corpus load_corpus(const TextSplits& splits, const Tokenizer& tokenizer, int64_t seq_len, const std::string& label) {
  auto load = [&](const TextSlice& slice, const std::string& split) {
    TokenData data = tokenize_cached(slice.path, slice.begin, slice.end, tokenizer, cache_dir(), label + " " + split);
    SSM_CHECK(data.size() >= seq_len + 1, label, " ", split, " split has ", data.size(),
              " tokens, fewer than one window of seq_len + 1 = ", seq_len + 1, " (", slice.path, ")");
    return data;
  };
  return Corpus{load(splits.train, "train"), load(splits.valid, "valid")};
}

}  // namespace ssm::tasks
