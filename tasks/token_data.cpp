// tasks/token_data.cpp — token files: writing (streamed, atomic), caching, mmap reading.
#include "tasks/token_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "tasks/progress.h"
#include "tensor/error.h"

namespace ssm::tasks {
namespace {

constexpr char kMagic[8] = {'S', 'S', 'M', 'T', 'O', 'K', '1', '\n'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8 + 8;
constexpr int64_t kReadChunk = 16 << 20;  // tokenise 16 MiB of text at a time

// Where the ids start: after the header and the JSON, rounded up to 8 bytes so they are aligned.
size_t ids_offset(size_t json_length) { return (kHeaderBytes + json_length + 7) / 8 * 8; }

int bytes_per_id(const Tokenizer& tokenizer) { return tokenizer.vocab_size() <= 65536 ? 2 : 4; }

// FNV-1a: a stable 64-bit fingerprint for cache file names (not security, only identity).
uint64_t fingerprint(const std::string& text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// Streams ids into a token file: header first (count patched at the end), then ids as they come,
// into path + ".tmp", renamed over `path` by commit() once everything is on disk.
class TokenFileWriter {
 public:
  TokenFileWriter(const std::string& path, const Tokenizer& tokenizer)
      : path_(path), temp_(path + ".tmp"), bytes_per_id_(bytes_per_id(tokenizer)), json_(tokenizer.to_json()) {
    file_ = std::fopen(temp_.c_str(), "wb");
    SSM_CHECK(file_ != nullptr, "cannot write token file ", temp_, ": ", std::strerror(errno));
    write_header(0, 0);
  }
  ~TokenFileWriter() {
    if (file_ != nullptr) {  // not committed: an error left it half-written
      std::fclose(file_);
      std::remove(temp_.c_str());
    }
  }
  void append(const std::vector<int32_t>& ids) {
    if (bytes_per_id_ == 2) {
      std::vector<uint16_t> narrow(ids.begin(), ids.end());
      write(narrow.data(), narrow.size() * 2);
    } else {
      write(ids.data(), ids.size() * 4);
    }
    count_ += static_cast<int64_t>(ids.size());
  }
  void commit(int64_t source_bytes) {
    SSM_CHECK(std::fseek(file_, 0, SEEK_SET) == 0, "cannot seek in ", temp_);
    write_header(count_, source_bytes);
    const bool flushed = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed || std::rename(temp_.c_str(), path_.c_str()) != 0) {
      std::remove(temp_.c_str());
      throw Error("cannot finish token file " + path_ + ": " + std::strerror(errno));
    }
  }

 private:
  void write(const void* data, size_t bytes) {
    SSM_CHECK(std::fwrite(data, 1, bytes, file_) == bytes, "cannot write token file ", temp_, ": ",
              std::strerror(errno));
  }
  void write_header(int64_t count, int64_t source_bytes) {
    const uint32_t width = static_cast<uint32_t>(bytes_per_id_), reserved = 0;
    const uint64_t n = static_cast<uint64_t>(count), src = static_cast<uint64_t>(source_bytes),
                   json_length = json_.size();
    write(kMagic, 8);
    write(&width, 4);
    write(&reserved, 4);
    write(&n, 8);
    write(&src, 8);
    write(&json_length, 8);
    write(json_.data(), json_.size());
    const char zeros[8] = {};
    write(zeros, ids_offset(json_.size()) - kHeaderBytes - json_.size());
  }

  std::string path_, temp_;
  int bytes_per_id_;
  std::string json_;
  std::FILE* file_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace

TokenData TokenData::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  SSM_CHECK(fd >= 0, "cannot open token file ", path, ": ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    throw Error("cannot read token file " + path + ": " + std::strerror(errno));
  }
  const size_t size = static_cast<size_t>(info.st_size);
  void* map = size > 0 ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  ::close(fd);
  SSM_CHECK(map != MAP_FAILED, "cannot map token file ", path, " (", size, " bytes)");
  TokenData data;
  data.map_ = map;
  data.map_size_ = size;
  const auto* bytes = static_cast<const unsigned char*>(map);
  const std::string broken = "token file " + path + " is damaged (delete it to tokenise again): ";
  SSM_CHECK(size >= kHeaderBytes && std::memcmp(bytes, kMagic, 8) == 0, broken, "bad header");
  uint32_t width = 0;
  uint64_t count = 0, source = 0, json_length = 0;
  std::memcpy(&width, bytes + 8, 4);
  std::memcpy(&count, bytes + 16, 8);
  std::memcpy(&source, bytes + 24, 8);
  std::memcpy(&json_length, bytes + 32, 8);
  SSM_CHECK(width == 2 || width == 4, broken, "id width ", width);
  SSM_CHECK(json_length <= size - kHeaderBytes, broken, "tokenizer length ", json_length);
  const size_t first_id = ids_offset(json_length);
  SSM_CHECK(first_id <= size && count <= (size - first_id) / width && first_id + count * width == size, broken,
            count, " ids do not fit its ", size, " bytes");
  data.tokenizer_json_.assign(reinterpret_cast<const char*>(bytes + kHeaderBytes), json_length);
  data.bytes_per_id_ = static_cast<int>(width);
  data.count_ = static_cast<int64_t>(count);
  data.source_bytes_ = static_cast<int64_t>(source);
  data.ids_ = bytes + first_id;
  return data;
}

TokenData TokenData::from_ids(std::vector<int32_t> ids, int64_t source_bytes) {
  TokenData data;
  data.owned_ = std::move(ids);
  data.ids_ = data.owned_.data();
  data.bytes_per_id_ = 4;
  data.count_ = static_cast<int64_t>(data.owned_.size());
  data.source_bytes_ = source_bytes;
  return data;
}

TokenData::TokenData(TokenData&& other) noexcept { *this = std::move(other); }

TokenData& TokenData::operator=(TokenData&& other) noexcept {
  if (this == &other) return *this;
  if (map_ != nullptr) ::munmap(map_, map_size_);
  map_ = std::exchange(other.map_, nullptr);
  map_size_ = std::exchange(other.map_size_, 0);
  owned_ = std::move(other.owned_);
  ids_ = map_ != nullptr ? other.ids_ : owned_.data();
  other.ids_ = nullptr;
  bytes_per_id_ = other.bytes_per_id_;
  count_ = std::exchange(other.count_, 0);
  source_bytes_ = other.source_bytes_;
  tokenizer_json_ = std::move(other.tokenizer_json_);
  return *this;
}

TokenData::~TokenData() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

void write_token_file(const std::string& path, const std::vector<int32_t>& ids, int64_t source_bytes,
                      const Tokenizer& tokenizer) {
  TokenFileWriter writer(path, tokenizer);
  writer.append(ids);
  writer.commit(source_bytes);
}

TokenData tokenize_cached(const std::string& text_path, int64_t begin, int64_t end, const Tokenizer& tokenizer,
                          const std::string& cache_dir, const std::string& label) {
  namespace fs = std::filesystem;
  std::error_code error;
  const auto file_size = static_cast<int64_t>(fs::file_size(text_path, error));
  SSM_CHECK(!error, label, ": cannot read ", text_path, ": ", error.message());
  if (end < 0 || end > file_size) end = file_size;
  SSM_CHECK(0 <= begin && begin <= end, label, ": byte range [", begin, ", ", end, ") is outside ", text_path);
  const auto modified = fs::last_write_time(text_path, error).time_since_epoch().count();

  const std::string identity = fs::absolute(text_path).string() + "|" + std::to_string(file_size) + "|" +
                               std::to_string(modified) + "|" + std::to_string(begin) + "|" +
                               std::to_string(end) + "|" + tokenizer.to_json();
  char name[32];
  std::snprintf(name, sizeof name, "-%016llx.tok", static_cast<unsigned long long>(fingerprint(identity)));
  const fs::path folder = fs::path(cache_dir) / "tokens";
  const std::string token_path = (folder / (fs::path(text_path).stem().string() + name)).string();
  if (fs::exists(token_path)) return TokenData::open(token_path);

  fs::create_directories(folder, error);
  SSM_CHECK(!error, "cannot create ", folder.string(), ": ", error.message());
  std::FILE* text = std::fopen(text_path.c_str(), "rb");
  SSM_CHECK(text != nullptr, label, ": cannot open ", text_path, ": ", std::strerror(errno));
  if (std::fseek(text, static_cast<long>(begin), SEEK_SET) != 0) {
    std::fclose(text);
    throw Error(label + ": cannot seek to byte " + std::to_string(begin) + " of " + text_path);
  }

  TokenFileWriter writer(token_path, tokenizer);
  ProgressLine progress(stderr, 5.0);
  const auto start = std::chrono::steady_clock::now();
  std::string pending;  // text read but not yet tokenised (a piece cut at the last newline)
  std::vector<char> buffer(static_cast<size_t>(kReadChunk));
  for (int64_t done = begin; done < end;) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(kReadChunk, end - done));
    const size_t got = std::fread(buffer.data(), 1, want, text);
    if (got == 0) break;  // the file shrank while we read it: tokenise what there is
    done += static_cast<int64_t>(got);
    pending.append(buffer.data(), got);
    // Cut at the last newline so no end-of-text marker or UTF-8 character is split between pieces.
    const size_t cut = done < end ? pending.rfind('\n') : std::string::npos;
    const size_t take = cut == std::string::npos ? (done < end ? 0 : pending.size()) : cut + 1;
    if (take > 0) {
      writer.append(tokenizer.encode_with_specials(std::string_view(pending).substr(0, take)));
      pending.erase(0, take);
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update("tokenising " + label + ": " + format_bytes(static_cast<uint64_t>(done - begin)) + " of " +
                    format_bytes(static_cast<uint64_t>(end - begin)) + ", ETA " +
                    format_duration(eta_seconds(double(done - begin), double(end - begin), elapsed)));
  }
  if (!pending.empty()) writer.append(tokenizer.encode_with_specials(pending));
  std::fclose(text);
  writer.commit(end - begin);
  progress.finish("tokenised " + label + " (" + format_bytes(static_cast<uint64_t>(end - begin)) + ") into " +
                  token_path);
  return TokenData::open(token_path);
}

int64_t text_bytes(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  int64_t bytes = static_cast<int64_t>(tokenizer.decode(ids).size());
  for (int32_t id : ids) bytes += id == tokenizer.eos_id() ? static_cast<int64_t>(kEndOfTextMarker.size()) : 0;
  return bytes;
}

}  // namespace ssm::tasks
