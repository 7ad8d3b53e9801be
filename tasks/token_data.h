// tasks/token_data.h — a corpus tokenised once, kept on disk, read back through mmap.
//
// Tokenising 200 MB of text takes a while and the result never changes, so it is done once and cached:
// a token file is a small header followed by the ids as little-endian uint16 (vocabularies up to 65,536
// ids, all of ours) or uint32. The cache key is the text file's identity (path, size, mtime), the byte
// limit and the tokenizer's JSON; a different tokenizer or an edited file gives a different token file.
//
//   header: "SSMTOK1\n" | u32 bytes per id (2|4) | u32 reserved | u64 count | u64 source bytes | u64 json length
//           | tokenizer JSON | zero bytes up to a multiple of 8 | ids
// (the padding keeps the ids aligned for their type in the mapped file).
//
// Documents separated by the literal "<|endoftext|>" (TinyStories) become the tokenizer's end-of-text id.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tokenizers/tokenizer.h"

namespace ssm::tasks {

// A read-only view of a token file (or of ids held in memory, for tests and small sources).
class TokenData {
 public:
  static TokenData open(const std::string& path);  // validates the header; clear error when truncated
  static TokenData from_ids(std::vector<int32_t> ids, int64_t source_bytes);
  TokenData(TokenData&&) noexcept;
  TokenData& operator=(TokenData&&) noexcept;
  ~TokenData();

  int64_t size() const { return count_; }
  int32_t operator[](int64_t i) const {
    return bytes_per_id_ == 2 ? static_cast<int32_t>(reinterpret_cast<const uint16_t*>(ids_)[i])
                              : static_cast<int32_t>(reinterpret_cast<const uint32_t*>(ids_)[i]);
  }
  int64_t source_bytes() const { return source_bytes_; }  // bytes of text these ids came from
  const std::string& tokenizer_json() const { return tokenizer_json_; }

 private:
  TokenData() = default;
  void* map_ = nullptr;  // the mmap of the whole file (nullptr for in-memory data)
  size_t map_size_ = 0;
  std::vector<int32_t> owned_;
  const void* ids_ = nullptr;
  int bytes_per_id_ = 4;
  int64_t count_ = 0;
  int64_t source_bytes_ = 0;
  std::string tokenizer_json_;
};

// Tokenise bytes [begin, end) of `text_path` (end = -1: to the end of the file) into a cached token file
// under <cache_dir>/tokens/, or reuse it; returns the open token data. Long jobs show a progress line on
// stderr. `label` names the data in messages ("tinystories train").
TokenData tokenize_cached(const std::string& text_path, int64_t begin, int64_t end, const Tokenizer& tokenizer,
                          const std::string& cache_dir, const std::string& label);

// Write ids to a token file (atomically: temp file, fsync, rename).
void write_token_file(const std::string& path, const std::vector<int32_t>& ids, int64_t source_bytes,
                      const Tokenizer& tokenizer);

// Bytes of text that `ids` stand for, as the corpus had them: the decoded text, with each end-of-text id
// counting as the marker it replaced. Bits per byte = total loss in bits ÷ this.
int64_t text_bytes(const Tokenizer& tokenizer, std::span<const int32_t> ids);

}  // namespace ssm::tasks
