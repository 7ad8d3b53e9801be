// tasks/corpus.h — from a data spec to tokenised train and validation splits.
//
//   tinystories  TinyStories-train.txt / TinyStories-valid.txt: from data.local_dir when set (the full files
//                or the -head.txt samples), else downloaded into the cache (tasks/download.h). The limits
//                max_train_bytes / max_valid_bytes keep only the beginning of each file.
//   text         data.path for training; validation is data.valid_path, or the last valid_fraction of
//                data.path (cut at a line break, so no line is in both).
// The tokenizer comes first: "byte" needs nothing, "char" builds its vocabulary from the training text.
#pragma once
#include <memory>
#include <string>

#include "tasks/experiment.h"
#include "tasks/token_data.h"
#include "tokenizers/tokenizer.h"

namespace ssm::tasks {

// A byte range of a text file: [begin, end), end = -1 for the end of the file.
struct TextSlice {
  std::string path;
  int64_t begin = 0, end = -1;
};

struct TextSplits {
  TextSlice train, valid;
};

// Where the text of a "tinystories" or "text" data source is (downloading TinyStories if needed).
TextSplits locate_text(const DataSpec& data);

// The model's tokenizer: "byte", or "char" with its vocabulary built from (up to 64 MiB of) the training text.
std::unique_ptr<Tokenizer> build_tokenizer(const ModelSpec& model, const TextSlice& training_text);

struct Corpus {
  TokenData train, valid;
};

// Both splits tokenised (cached under tasks::cache_dir()). Errors when a split is too short for one window
// of seq_len + 1 tokens, naming the split and its size.
Corpus load_corpus(const TextSplits& splits, const Tokenizer& tokenizer, int64_t seq_len, const std::string& label);

}  // namespace ssm::tasks
