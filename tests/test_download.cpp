// Tests for tasks/download.h, against the local server of tests/http_test_server.h.
//
//   DownloadEnv     cache_dir, hf_endpoint and hf_dataset_url from the environment
//   Download        fetch_tinystories / download_file over HTTP: the cache (hit = no request), the
//                   Hub's URL layout, redirects, an interrupted transfer resumed with Range (also one
//                   that only Content-Range shows), servers that ignore Range or whose file changed,
//                   a .part that is already complete, empty files, and the errors (404, connection
//                   refused) with the offline hint
// Each test has its own folder, cache and server; the environment is restored afterwards.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include "tasks/download.h"
#include "tensor/error.h"
#include "tests/http_test_server.h"

namespace {

namespace fs = std::filesystem;
using ssm::tasks::DownloadOptions;
using ssm::test::HttpTestServer;

const std::string kValidPath = "/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt";
const std::string kTrainPath = "/datasets/roneneldan/TinyStories/resolve/main/TinyStories-train.txt";
const DownloadOptions kQuiet{.show_progress = false};

// Text in the TinyStories layout, just over `min_bytes` long. Every story is numbered, so any
// misplaced byte range (a resume from the wrong offset) changes the result.
std::string tinystories_text(size_t min_bytes) {
  std::string text;
  for (int story = 0; text.size() < min_bytes; ++story) {
    text += "Once upon a time there was a little robot number " + std::to_string(story) +
            ". It liked to count the stars.\nOne day it found star " + std::to_string(story * 7 + 3) +
            " and was happy.\n<|endoftext|>\n";
  }
  return text;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// The message of the ssm::Error that `action` throws ("" and a test failure when it does not throw).
std::string error_from(const std::function<void()>& action) {
  try {
    action();
  } catch (const ssm::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an ssm::Error";
  return "";
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing \"" << part << "\" in: " << text;
}

void expect_offline_hint(const std::string& message) {
  for (const char* part : {"HF_ENDPOINT", "--set data.local_dir=DIR", "--text-file PATH"}) {
    expect_contains(message, part);
  }
}

// A port on which nothing listens: bound (so no one else takes it during the test) but not listening,
// so connecting is refused at once.
class RefusingPort {
 public:
  RefusingPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~RefusingPort() { close(fd_); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// Saves the variables the code under test reads and restores them afterwards, so tests may change
// them freely; each test gets its own folder, with the cache in it.
class EnvRestoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"SSM_CACHE", "HF_ENDPOINT", "HOME", "no_proxy"}) {
      const char* value = std::getenv(name);
      saved_env_[name] = value ? std::optional<std::string>(value) : std::nullopt;
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("ssm_download_" + std::to_string(getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    setenv("SSM_CACHE", (dir_ / "cache").c_str(), 1);
    setenv("no_proxy", "127.0.0.1", 1);  // the local server is never reached through a proxy
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_env_) {
      value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;

 private:
  std::map<std::string, std::optional<std::string>> saved_env_;
};

using DownloadEnv = EnvRestoringTest;

// ... and the Hub at a fresh local server.
class Download : public EnvRestoringTest {
 protected:
  void SetUp() override {
    EnvRestoringTest::SetUp();
    setenv("HF_ENDPOINT", server_.base_url().c_str(), 1);
  }
  fs::path cached(const std::string& file) const { return dir_ / "cache" / "tinystories" / file; }

  HttpTestServer server_;
  const std::string stories_ = tinystories_text(200 * 1000);
};

// ---------------------------------------------------------------- environment

TEST_F(DownloadEnv, CacheDirFromSsmCacheThenHome) {
  setenv("SSM_CACHE", "/data/ssm-cache", 1);
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(ssm::tasks::cache_dir(), "/data/ssm-cache");
  unsetenv("SSM_CACHE");
  EXPECT_EQ(ssm::tasks::cache_dir(), "/home/someone/.cache/ssm");
  setenv("SSM_CACHE", "", 1);  // empty counts as unset
  EXPECT_EQ(ssm::tasks::cache_dir(), "/home/someone/.cache/ssm");
}

TEST_F(DownloadEnv, CacheDirWithoutSsmCacheOrHomeIsAnError) {
  unsetenv("SSM_CACHE");
  unsetenv("HOME");
  const std::string message = error_from([] { ssm::tasks::cache_dir(); });
  expect_contains(message, "SSM_CACHE");
  expect_contains(message, "HOME");
}

TEST_F(DownloadEnv, HfEndpoint) {
  unsetenv("HF_ENDPOINT");
  EXPECT_EQ(ssm::tasks::hf_endpoint(), "https://huggingface.co");
  setenv("HF_ENDPOINT", "", 1);
  EXPECT_EQ(ssm::tasks::hf_endpoint(), "https://huggingface.co");
  setenv("HF_ENDPOINT", "https://hf-mirror.example//", 1);
  EXPECT_EQ(ssm::tasks::hf_endpoint(), "https://hf-mirror.example");
}

TEST_F(DownloadEnv, HfDatasetUrl) {
  setenv("HF_ENDPOINT", "http://mirror.example/", 1);
  EXPECT_EQ(ssm::tasks::hf_dataset_url("roneneldan/TinyStories", "TinyStories-valid.txt"),
            "http://mirror.example/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt");
  // Folders in the file name stay; a revision's '/' and any space are percent-encoded.
  EXPECT_EQ(ssm::tasks::hf_dataset_url("org/set", "data/part 1.txt", "refs/pr/1"),
            "http://mirror.example/datasets/org/set/resolve/refs%2Fpr%2F1/data/part%201.txt");
}

// ---------------------------------------------------------------- downloads

TEST_F(Download, FetchesTinyStoriesIntoTheCacheOnce) {
  server_.serve(kValidPath, stories_);
  const std::string path = ssm::tasks::fetch_tinystories("valid");  // progress shown (on stderr)
  EXPECT_EQ(path, cached("TinyStories-valid.txt").string());
  EXPECT_EQ(read_file(path), stories_);
  EXPECT_FALSE(fs::exists(path + ".part"));
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].path, kValidPath);
  EXPECT_EQ(server_.requests()[0].range, "");

  EXPECT_EQ(ssm::tasks::fetch_tinystories("valid", kQuiet), path);
  EXPECT_EQ(server_.requests().size(), 1u) << "a cached file must not be fetched again";
}

TEST_F(Download, ExistingDestinationIsNotTouched) {
  server_.serve("/file.txt", "served");
  const fs::path dest = dir_ / "file.txt";
  write_file(dest, "already here");
  ssm::tasks::download_file(server_.base_url() + "/file.txt", dest.string(), kQuiet);
  EXPECT_EQ(read_file(dest), "already here");
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(Download, InterruptedTransferKeepsThePartAndResumes) {
  server_.serve(kValidPath, stories_);
  const size_t cut = 70000;
  server_.cut_next_body_after(cut);
  const fs::path dest = cached("TinyStories-valid.txt");
  const std::string message = error_from([] { ssm::tasks::fetch_tinystories("valid", kQuiet); });
  expect_contains(message, server_.base_url() + kValidPath);
  expect_contains(message, dest.string() + ".part");
  expect_offline_hint(message);
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_EQ(read_file(dest.string() + ".part"), stories_.substr(0, cut));

  EXPECT_EQ(ssm::tasks::fetch_tinystories("valid", kQuiet), dest.string());
  ASSERT_EQ(server_.requests().size(), 2u);
  EXPECT_EQ(server_.requests()[1].range, "bytes=" + std::to_string(cut) + "-");
  EXPECT_EQ(read_file(dest), stories_);
  EXPECT_FALSE(fs::exists(dest.string() + ".part"));
}

TEST_F(Download, ServerIgnoringRangeStartsOver) {
  server_.serve(kValidPath, stories_);
  server_.set_ignore_range(true);
  const fs::path dest = cached("TinyStories-valid.txt");
  write_file(dest.string() + ".part", std::string(1000, 'x'));  // not even a prefix of the file
  ssm::tasks::fetch_tinystories("valid", kQuiet);
  ASSERT_EQ(server_.requests().size(), 1u);
  EXPECT_EQ(server_.requests()[0].range, "bytes=1000-");
  EXPECT_EQ(read_file(dest), stories_);
}

TEST_F(Download, CompletePartIsFinishedWithoutARefetch) {
  server_.serve(kValidPath, stories_);
  const fs::path dest = cached("TinyStories-valid.txt");
  write_file(dest.string() + ".part", stories_);  // e.g. killed between the last byte and the rename
  ssm::tasks::fetch_tinystories("valid", kQuiet);
  ASSERT_EQ(server_.requests().size(), 1u);  // answered 416 with the size the .part already has
  EXPECT_EQ(server_.requests()[0].range, "bytes=" + std::to_string(stories_.size()) + "-");
  EXPECT_EQ(read_file(dest), stories_);
  EXPECT_FALSE(fs::exists(dest.string() + ".part"));
}

TEST_F(Download, PartLongerThanTheServersFileStartsOver) {
  server_.serve(kValidPath, stories_);
  const fs::path dest = cached("TinyStories-valid.txt");
  write_file(dest.string() + ".part", stories_ + "from an older, longer version");
  ssm::tasks::fetch_tinystories("valid", kQuiet);
  ASSERT_EQ(server_.requests().size(), 2u);  // 416 with another size, then the whole file
  EXPECT_EQ(server_.requests()[1].range, "");
  EXPECT_EQ(read_file(dest), stories_);
}

TEST_F(Download, CutWithoutContentLengthIsCaughtByContentRange) {
  // Without Content-Length a body ends when the connection closes, so curl sees no error; the
  // total in Content-Range shows that the file is not complete.
  server_.serve(kValidPath, stories_);
  server_.set_omit_content_length(true);
  server_.cut_next_body_after(5000);
  const fs::path dest = cached("TinyStories-valid.txt");
  write_file(dest.string() + ".part", stories_.substr(0, 1000));
  const std::string message = error_from([] { ssm::tasks::fetch_tinystories("valid", kQuiet); });
  expect_contains(message, std::to_string(stories_.size()));
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_EQ(read_file(dest.string() + ".part"), stories_.substr(0, 6000));

  ssm::tasks::fetch_tinystories("valid", kQuiet);
  ASSERT_EQ(server_.requests().size(), 2u);
  EXPECT_EQ(server_.requests()[1].range, "bytes=6000-");
  EXPECT_EQ(read_file(dest), stories_);
}

TEST_F(Download, FollowsRedirectsAndResumesThroughThem) {
  // The Hub answers /resolve/ URLs with a redirect to its storage.
  server_.redirect(kTrainPath, "/storage/blob-1234");
  server_.serve("/storage/blob-1234", stories_);
  server_.cut_next_body_after(12345);
  EXPECT_THROW(ssm::tasks::fetch_tinystories("train", kQuiet), ssm::Error);
  const std::string path = ssm::tasks::fetch_tinystories("train", kQuiet);
  EXPECT_EQ(read_file(path), stories_);
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].path, kTrainPath);
  EXPECT_EQ(requests[1].path, "/storage/blob-1234");
  EXPECT_EQ(requests[3].path, "/storage/blob-1234");
  EXPECT_EQ(requests[3].range, "bytes=12345-");
}

TEST_F(Download, OnlyTheLastResponseOfARedirectDescribesTheFile) {
  server_.redirect(kTrainPath, "/storage/blob-1234");  // its 302 carries a Content-Length of its own
  server_.serve("/storage/blob-1234", stories_);
  server_.set_omit_content_length(true);
  EXPECT_EQ(read_file(ssm::tasks::fetch_tinystories("train", kQuiet)), stories_);
}

TEST_F(Download, EmptyFile) {
  server_.serve("/empty.txt", "");
  const fs::path dest = dir_ / "nested" / "folders" / "empty.txt";
  ssm::tasks::download_file(server_.base_url() + "/empty.txt", dest.string(), kQuiet);
  ASSERT_TRUE(fs::exists(dest));
  EXPECT_EQ(fs::file_size(dest), 0u);
}

TEST_F(Download, NotFoundNamesUrlAndStatusAndLeavesNothing) {
  const std::string message = error_from([] { ssm::tasks::fetch_tinystories("valid", kQuiet); });
  expect_contains(message, server_.base_url() + kValidPath);
  expect_contains(message, "404");
  expect_offline_hint(message);
  const fs::path dest = cached("TinyStories-valid.txt");
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_FALSE(fs::exists(dest.string() + ".part"));
}

TEST_F(Download, ConnectionRefusedGivesTheOfflineHint) {
  const RefusingPort nobody;
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(nobody.port());
  setenv("HF_ENDPOINT", endpoint.c_str(), 1);
  const std::string message = error_from([] { ssm::tasks::fetch_tinystories("valid", kQuiet); });
  expect_contains(message, endpoint + kValidPath);
  expect_offline_hint(message);
  EXPECT_FALSE(fs::exists(cached("TinyStories-valid.txt").string() + ".part"));
}

TEST_F(Download, UnknownSplitIsAnError) {
  const std::string message = error_from([] { ssm::tasks::fetch_tinystories("test", kQuiet); });
  expect_contains(message, "\"test\"");
  EXPECT_TRUE(server_.requests().empty());
}

}  // namespace
