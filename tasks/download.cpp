// tasks/download.cpp — see download.h.
#include "tasks/download.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "tasks/progress.h"
#include "tensor/error.h"

namespace ssm::tasks {

namespace fs = std::filesystem;

namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// RFC 3986: unreserved characters stay as they are, '/' too when `keep_slash`, the rest becomes %XX.
std::string percent_encode(const std::string& text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool alphanumeric = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') || (byte >= '0' && byte <= '9');
    const bool unreserved = alphanumeric || byte == '-' || byte == '.' || byte == '_' || byte == '~';
    if (unreserved || (keep_slash && byte == '/')) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

// libcurl's global state, set up once per process (curl_global_init is not itself thread-safe;
// a function-local static is).
void init_curl_once() {
  static const CURLcode result = curl_global_init(CURL_GLOBAL_DEFAULT);
  SSM_CHECK(result == CURLE_OK, "download: libcurl failed to initialise: ", curl_easy_strerror(result));
}

// The size of the file at `path`, 0 when there is none (or it cannot be read: then it is rewritten).
int64_t size_or_zero(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  return ec ? 0 : int64_t(size);
}

std::optional<int64_t> parse_int(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// What the headers of one response said. A transfer that follows redirects sees several responses;
// each status line starts a fresh ResponseHead, so the one left at the end describes the file.
struct ResponseHead {
  long status = 0;              // 0 until a status line arrived
  std::string status_text;      // "404 Not Found" (HTTP/2 sends no reason phrase: "404")
  int64_t content_length = -1;  // -1: not sent
  int64_t range_first = -1;     // Content-Range: bytes FIRST-LAST/SIZE (-1 for "bytes */SIZE" or none)
  int64_t range_size = -1;      // SIZE (-1 for "*" or none)

  // The whole file's size as this response announces it, or -1.
  int64_t file_size() const { return status == 200 ? content_length : range_size; }

  void read_line(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
      *this = ResponseHead{};
      const size_t space = line.find(' ');
      if (space == std::string_view::npos) return;
      status_text = line.substr(space + 1);
      status = parse_int(std::string_view(status_text).substr(0, 3)).value_or(0);
      return;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (value.starts_with(' ') || value.starts_with('\t')) value.remove_prefix(1);
    if (name == "content-length") {
      content_length = parse_int(value).value_or(-1);
    } else if (name == "content-range" && value.starts_with("bytes ")) {
      value.remove_prefix(6);
      const size_t dash = value.find('-'), slash = value.find('/');
      if (slash == std::string_view::npos) return;
      if (dash < slash) range_first = parse_int(value.substr(0, dash)).value_or(-1);
      range_size = parse_int(value.substr(slash + 1)).value_or(-1);
    }
  }
};

// One HTTP GET of `url` into `part`, continuing the .part from its current size.
class Transfer {
 public:
  Transfer(const std::string& url, const std::string& part, const DownloadOptions& options)
      : url_(url), part_(part), options_(options), resume_from_(size_or_zero(part)) {
    if (options.show_progress) progress_.emplace(stderr);
  }
  ~Transfer() {
    if (part_file_) std::fclose(part_file_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // True when the .part now holds the whole file (as long as the server announced, when it did).
  // False when the .part is not a prefix of the server's file (it changed): delete it, fetch anew;
  // only a resuming transfer can say so. Throws on failure, keeping what the .part received.
  bool run();

 private:
  using Clock = std::chrono::steady_clock;

  template <class Value>
  void set(CURL* curl, CURLoption option, Value value) {
    const CURLcode code = curl_easy_setopt(curl, option, value);
    SSM_CHECK(code == CURLE_OK, "download ", url_, ": libcurl refused an option: ", curl_easy_strerror(code));
  }
  bool open_part();
  bool close_part();
  std::string progress_text() const;
  std::string summary_text() const;
  [[noreturn]] void fail(const std::string& cause) const;

  static size_t on_header(char* data, size_t size, size_t count, void* self);
  static size_t on_body(char* data, size_t size, size_t count, void* self);
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

  const std::string& url_;
  const std::string& part_;
  const DownloadOptions& options_;
  const int64_t resume_from_;     // the .part's size when the transfer began
  std::optional<ProgressLine> progress_;
  ResponseHead head_;
  std::FILE* part_file_ = nullptr;  // open while the file's body arrives
  bool body_started_ = false;       // the .part was opened for this response's body
  int64_t body_offset_ = 0;         // where this body starts in the file: resume_from_ on a 206, 0 on a 200
  int64_t received_ = 0;            // body bytes written by this transfer
  int write_errno_ = 0;             // set when writing the .part failed
  Clock::time_point started_;
};

bool Transfer::run() {
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> handle(curl_easy_init(), &curl_easy_cleanup);
  SSM_CHECK(handle, "download ", url_, ": libcurl could not create a transfer");
  CURL* curl = handle.get();
  char curl_error[CURL_ERROR_SIZE] = {};
  set(curl, CURLOPT_URL, url_.c_str());
  set(curl, CURLOPT_ERRORBUFFER, curl_error);
  set(curl, CURLOPT_USERAGENT, "ssm-engine");
  set(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for timeouts: safe beside other threads
  set(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  set(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(curl, CURLOPT_FOLLOWLOCATION, 1L);
  set(curl, CURLOPT_MAXREDIRS, 10L);
  set(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  set(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  set(curl, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_s);
  set(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  set(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_timeout_s);
  set(curl, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  set(curl, CURLOPT_HEADERDATA, this);
  set(curl, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
  set(curl, CURLOPT_WRITEDATA, this);
  if (progress_) {
    set(curl, CURLOPT_NOPROGRESS, 0L);
    set(curl, CURLOPT_XFERINFOFUNCTION, &Transfer::on_progress);
    set(curl, CURLOPT_XFERINFODATA, this);
  }
  const std::string range = std::to_string(resume_from_) + "-";
  if (resume_from_ > 0) set(curl, CURLOPT_RANGE, range.c_str());  // "Range: bytes=N-"

  started_ = Clock::now();
  const CURLcode code = curl_easy_perform(curl);
  close_part();
  // A body without Content-Length ends when the connection closes, so a cut looks like success to
  // curl; a Content-Range total still tells.
  const int64_t announced = head_.file_size(), size = body_offset_ + received_;
  const bool ended_early = announced >= 0 && size != announced;
  if (progress_ && body_started_) {
    const bool whole = code == CURLE_OK && write_errno_ == 0 && !ended_early;
    progress_->finish(whole ? summary_text() : progress_text() + "  (stopped)");
  }

  const long status = head_.status;
  // 416: nothing from byte N on. The .part is the whole file, or the file is now shorter.
  if (resume_from_ > 0 && status == 416) return head_.range_size == resume_from_;
  if (resume_from_ > 0 && status == 206 && head_.range_first != resume_from_) return false;
  const bool file_answer = status == 200 || (status == 206 && head_.range_first == resume_from_);
  if (status != 0 && !file_answer) fail("the server answered HTTP " + head_.status_text);
  if (write_errno_ != 0) fail("cannot write " + part_ + ": " + std::strerror(write_errno_));
  if (code != CURLE_OK) fail(curl_error[0] != '\0' ? curl_error : curl_easy_strerror(code));
  if (!body_started_) {  // an empty file: no body arrived, so nothing created the .part yet
    SSM_CHECK(open_part() && close_part(), "download ", url_, ": cannot create ", part_, ": ",
              std::strerror(write_errno_));
  }
  if (ended_early)
    fail("the transfer ended at byte " + std::to_string(size) + " of the " + std::to_string(announced) + " announced");
  return true;
}

// Opens the .part for the body of a 200 (the whole file: truncate) or of the 206 that continues it
// (append). Any other answer is not the file, and gets no .part.
bool Transfer::open_part() {
  const char* mode = nullptr;
  if (head_.status == 200) {
    body_offset_ = 0;
    mode = "wb";
  } else if (head_.status == 206 && head_.range_first == resume_from_) {
    body_offset_ = resume_from_;
    mode = "ab";
  } else {
    return false;
  }
  part_file_ = std::fopen(part_.c_str(), mode);
  if (!part_file_) {
    write_errno_ = errno;
    return false;
  }
  body_started_ = true;
  return true;
}

// Flushes and closes the .part; false (with write_errno_ set) when the last bytes could not be written.
bool Transfer::close_part() {
  if (!part_file_) return true;
  const bool ok = std::fclose(part_file_) == 0;
  if (!ok) write_errno_ = errno;
  part_file_ = nullptr;
  return ok;
}

std::string Transfer::progress_text() const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const int64_t done = body_offset_ + received_;
  const int64_t total = head_.file_size();
  std::string text = fs::path(part_).stem().string() + ": " + format_bytes(uint64_t(done));
  if (total > 0) text += " / " + format_bytes(uint64_t(total)) + " (" + std::to_string(done * 100 / total) + "%)";
  if (elapsed > 0) text += "  " + format_bytes(uint64_t(double(received_) / elapsed)) + "/s";
  if (total > 0)
    text += "  ETA " + format_duration(eta_seconds(double(received_), double(total - body_offset_), elapsed));
  return text;
}

std::string Transfer::summary_text() const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  std::string text = fs::path(part_).stem().string() + ": " + format_bytes(uint64_t(body_offset_ + received_)) +
                     " in " + format_duration(elapsed);
  if (elapsed > 0) text += " (" + format_bytes(uint64_t(double(received_) / elapsed)) + "/s)";
  return text;
}

void Transfer::fail(const std::string& cause) const {
  std::string message = "download " + url_ + ": " + cause;
  if (const int64_t kept = size_or_zero(part_); kept > 0)
    message += "; the " + std::to_string(kept) + " bytes so far are kept in " + part_ +
               " and the next run resumes from there";
  throw Error(message);
}

size_t Transfer::on_header(char* data, size_t size, size_t count, void* self) {
  static_cast<Transfer*>(self)->head_.read_line(std::string_view(data, size * count));
  return size * count;
}

// Only the last response's body arrives here (curl drops those of the redirects it follows).
// Returning fewer bytes than given makes curl abort the transfer; run() then tells why.
size_t Transfer::on_body(char* data, size_t size, size_t count, void* self_ptr) {
  Transfer& self = *static_cast<Transfer*>(self_ptr);
  const size_t n = size * count;
  if (!self.part_file_ && !self.open_part()) return 0;
  if (std::fwrite(data, 1, n, self.part_file_) != n) {
    self.write_errno_ = errno;
    return 0;
  }
  self.received_ += int64_t(n);
  return n;
}

int Transfer::on_progress(void* self_ptr, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  Transfer& self = *static_cast<Transfer*>(self_ptr);
  if (self.part_file_) self.progress_->update(self.progress_text());
  return 0;  // go on
}

// Makes the complete .part the file: its bytes on disk first, then one atomic rename.
void commit(const std::string& url, const std::string& part, const std::string& dest) {
  const int fd = ::open(part.c_str(), O_RDONLY | O_CLOEXEC);
  SSM_CHECK(fd >= 0, "download ", url, ": cannot open ", part, ": ", std::strerror(errno));
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  ::close(fd);
  SSM_CHECK(synced, "download ", url, ": cannot sync ", part, " to disk: ", std::strerror(sync_errno));
  SSM_CHECK(std::rename(part.c_str(), dest.c_str()) == 0, "download ", url, ": cannot rename ", part, " to ", dest,
            ": ", std::strerror(errno));
  // Best effort: make the rename itself durable; a failure here cannot be acted on.
  const fs::path folder = fs::path(dest).parent_path();
  const int dir_fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace

std::string cache_dir() {
  const std::string cache = env_or_empty("SSM_CACHE");
  if (!cache.empty()) return cache;
  const std::string home = env_or_empty("HOME");
  SSM_CHECK(!home.empty(), "no cache folder for downloads: set SSM_CACHE (or HOME, for $HOME/.cache/ssm)");
  return (fs::path(home) / ".cache" / "ssm").string();
}

std::string hf_endpoint() {
  std::string endpoint = env_or_empty("HF_ENDPOINT");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint.empty() ? "https://huggingface.co" : endpoint;
}

std::string hf_dataset_url(const std::string& repo, const std::string& file, const std::string& revision) {
  return hf_endpoint() + "/datasets/" + percent_encode(repo, true) + "/resolve/" + percent_encode(revision, false) +
         "/" + percent_encode(file, true);
}

void download_file(const std::string& url, const std::string& dest, const DownloadOptions& options) {
  if (fs::exists(dest)) return;
  const fs::path folder = fs::path(dest).parent_path();
  if (!folder.empty()) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    SSM_CHECK(!ec, "download ", url, ": cannot create the folder ", folder.string(), ": ", ec.message());
  }
  init_curl_once();
  const std::string part = dest + ".part";
  if (!Transfer(url, part, options).run()) {  // the server's file changed since the .part was begun
    fs::remove(part);
    Transfer(url, part, options).run();  // from nothing: complete or throws
  }
  commit(url, part, dest);
}

std::string fetch_tinystories(const std::string& split, const DownloadOptions& options) {
  SSM_CHECK(split == "train" || split == "valid", "TinyStories has the splits \"train\" and \"valid\", not \"", split,
            "\"");
  const std::string file = "TinyStories-" + split + ".txt";
  const std::string dest = (fs::path(cache_dir()) / "tinystories" / file).string();
  try {
    download_file(hf_dataset_url("roneneldan/TinyStories", file), dest, options);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                ". To go on without this download: set HF_ENDPOINT to a Hugging Face mirror; or copy the file to " +
                dest + "; or put TinyStories-train.txt and TinyStories-valid.txt (or the -head.txt samples) in a "
                "folder and pass --set data.local_dir=DIR; or train on any text file with --text-file PATH");
  }
  return dest;
}

}  // namespace ssm::tasks
