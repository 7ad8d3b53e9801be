// tests/http_test_server.h — a tiny HTTP/1.1 server on 127.0.0.1 for the download tests.
//
// Serves files from memory on a port the OS picks, one connection at a time on one thread, each
// answered with "Connection: close". It understands just what a resumable download needs:
//   GET PATH                       200 with the whole body, or 404 for an unknown path
//   GET PATH + Range: bytes=N-     206 with the rest and Content-Range: bytes N-LAST/SIZE, or 416 with
//                                  Content-Range: bytes */SIZE when N is not inside the file (or the
//                                  header is malformed)
//   a redirected path              302 to another path
// and has knobs to misbehave: cut the connection partway through a body (an interrupted transfer),
// ignore Range headers (a server without resume support), or send file bodies without
// Content-Length (ended by closing the connection). Every request is recorded.
// The destructor stops the thread and joins it.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ssm::test {

class HttpTestServer {
 public:
  struct Request {
    std::string path;   // the request target, e.g. "/datasets/x/resolve/main/f.txt"
    std::string range;  // the Range header's value, "" when none was sent
  };

  HttpTestServer();   // listening when it returns; throws std::runtime_error when it cannot
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:PORT"

  void serve(const std::string& path, std::string body);
  void redirect(const std::string& from_path, const std::string& to_path);
  // The next response with a body (200 or 206) sends only its first `bytes` body bytes, then closes
  // the connection, though its Content-Length announced them all.
  void cut_next_body_after(std::size_t bytes);
  void set_ignore_range(bool ignore);
  void set_omit_content_length(bool omit);  // for 200 and 206 answers

  std::vector<Request> requests() const;  // in arrival order

 private:
  void serve_connections();
  void answer(int connection);
  std::string response_for(const Request& request);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};  // the destructor writes here to end serve_connections()
  int port_ = 0;

  mutable std::mutex mutex_;  // guards everything below, shared by the test and the server thread
  std::map<std::string, std::string> files_;
  std::map<std::string, std::string> redirects_;
  std::optional<std::size_t> cut_after_;
  bool ignore_range_ = false;
  bool omit_content_length_ = false;
  std::vector<Request> requests_;

  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace ssm::test
