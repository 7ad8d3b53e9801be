// tests/http_test_server.cpp — see http_test_server.h.
#include "tests/http_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace ssm::test {

namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("HttpTestServer: ") + what + ": " + std::strerror(errno));
}

// A stuck client must not hang the server thread (and with it the destructor's join).
void set_timeouts(int fd) {
  const timeval two_seconds{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two_seconds, sizeof two_seconds);
}

// Everything up to the blank line that ends the headers ("" when the client gave up first).
std::string read_head(int connection) {
  std::string head;
  char buffer[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
    const ssize_t n = recv(connection, buffer, sizeof buffer, 0);
    if (n <= 0) return "";
    head.append(buffer, static_cast<size_t>(n));
  }
  return head;
}

HttpTestServer::Request parse_request(std::string_view head) {
  HttpTestServer::Request request;
  const size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);  // "GET /path HTTP/1.1"
  const size_t first = request_line.find(' '), last = request_line.rfind(' ');
  if (first != std::string_view::npos && last > first) request.path = request_line.substr(first + 1, last - first - 1);
  for (size_t start = line_end + 2; start < head.size();) {
    const size_t end = head.find("\r\n", start);
    const std::string_view line = head.substr(start, end - start);
    start = end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (value.starts_with(' ')) value.remove_prefix(1);
    if (name == "range") request.range = value;
  }
  return request;
}

// N from "bytes=N-", or nothing for any other form.
std::optional<size_t> range_start(std::string_view range) {
  if (!range.starts_with("bytes=") || !range.ends_with('-')) return std::nullopt;
  range = range.substr(6, range.size() - 7);
  size_t start = 0;
  const auto [end, error] = std::from_chars(range.data(), range.data() + range.size(), start);
  if (error != std::errc() || end != range.data() + range.size()) return std::nullopt;
  return start;
}

std::string response(const std::string& status, std::string headers, std::string_view body,
                     bool announce_length = true) {
  if (announce_length) headers += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return "HTTP/1.1 " + status + "\r\nConnection: close\r\n" + headers + "\r\n" + std::string(body);
}

}  // namespace

HttpTestServer::HttpTestServer() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // the OS picks a free port
  socklen_t length = sizeof address;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(listen_fd_, 16) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int saved = errno;
    close(listen_fd_);
    errno = saved;
    fail("listening on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    close(listen_fd_);
    fail("pipe");
  }
  thread_ = std::thread([this] { serve_connections(); });
}

HttpTestServer::~HttpTestServer() {
  const char stop = 's';
  (void)!write(wake_pipe_[1], &stop, 1);
  thread_.join();
  close(listen_fd_);
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
}

std::string HttpTestServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void HttpTestServer::serve(const std::string& path, std::string body) {
  std::lock_guard lock(mutex_);
  files_[path] = std::move(body);
}

void HttpTestServer::redirect(const std::string& from_path, const std::string& to_path) {
  std::lock_guard lock(mutex_);
  redirects_[from_path] = to_path;
}

void HttpTestServer::cut_next_body_after(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  cut_after_ = bytes;
}

void HttpTestServer::set_ignore_range(bool ignore) {
  std::lock_guard lock(mutex_);
  ignore_range_ = ignore;
}

void HttpTestServer::set_omit_content_length(bool omit) {
  std::lock_guard lock(mutex_);
  omit_content_length_ = omit;
}

std::vector<HttpTestServer::Request> HttpTestServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

void HttpTestServer::serve_connections() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // the destructor asks us to stop
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    set_timeouts(connection);
    answer(connection);
    close(connection);
  }
}

void HttpTestServer::answer(int connection) {
  const std::string head = read_head(connection);
  if (head.empty()) return;
  const std::string bytes = response_for(parse_request(head));
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = send(connection, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
  // Half-close, then wait for the client to close its side: closing at once with unread input
  // would reset the connection and could discard the end of the response in flight.
  shutdown(connection, SHUT_WR);
  char drain[256];
  while (recv(connection, drain, sizeof drain, 0) > 0) {
  }
}

std::string HttpTestServer::response_for(const Request& request) {
  std::lock_guard lock(mutex_);
  requests_.push_back(request);
  if (const auto to = redirects_.find(request.path); to != redirects_.end())  // with a body, as real servers send
    return response("302 Found", "Location: " + to->second + "\r\n", "moved there\n");
  const auto file = files_.find(request.path);
  if (file == files_.end()) return response("404 Not Found", "", "no such file\n");
  const std::string& body = file->second;

  std::string full;
  if (request.range.empty() || ignore_range_) {
    full = response("200 OK", "", body, !omit_content_length_);
  } else {
    const std::optional<size_t> start = range_start(request.range);
    const std::string size = std::to_string(body.size());
    if (!start || *start >= body.size())
      return response("416 Range Not Satisfiable", "Content-Range: bytes */" + size + "\r\n", "");
    const std::string last = std::to_string(body.size() - 1);
    const std::string content_range = "Content-Range: bytes " + std::to_string(*start) + "-" + last + "/" + size;
    full = response("206 Partial Content", content_range + "\r\n", std::string_view(body).substr(*start),
                    !omit_content_length_);
  }
  if (!cut_after_) return full;
  const size_t body_begins = full.find("\r\n\r\n") + 4;
  full.resize(std::min(full.size(), body_begins + *cut_after_));
  cut_after_.reset();
  return full;
}

}  // namespace ssm::test
