// tasks/download.h — datasets from the Hugging Face Hub (or a mirror) into a local cache, resumably.
//
// Datasets are plain files fetched over HTTPS with libcurl. A download in progress lives in
// `dest + ".part"` and only becomes `dest` (by an atomic rename, after an fsync) once complete, so
// the presence of `dest` alone means "downloaded": a later call never touches the network. An
// interrupted transfer (network loss, Ctrl-C, a timeout) keeps its .part and the next call asks the
// server for the rest with an HTTP Range request.
//
// Environment:
//   SSM_CACHE     the cache folder (default $HOME/.cache/ssm)
//   HF_ENDPOINT   the Hub's address (default https://huggingface.co), e.g. a mirror; same variable
//                 as the official huggingface_hub client
#pragma once
#include <string>

namespace ssm::tasks {

// $SSM_CACHE, else $HOME/.cache/ssm; throws ssm::Error when neither is set (or both are empty).
std::string cache_dir();

// $HF_ENDPOINT without trailing '/', else "https://huggingface.co".
std::string hf_endpoint();

// <endpoint>/datasets/<repo>/resolve/<revision>/<file>, each part percent-encoded as the Hub
// expects: '/' is kept in repo and file (folders) but encoded in the revision ("refs/pr/1").
std::string hf_dataset_url(const std::string& repo, const std::string& file, const std::string& revision = "main");

struct DownloadOptions {
  bool show_progress = true;      // a ProgressLine on stderr: bytes, %, rate, ETA
  long connect_timeout_s = 20;
  long low_speed_timeout_s = 60;  // abort when below 1 KiB/s for this long
};

// Fetch `url` into `dest` (parent folders are created). If `dest` exists, return at once. If
// `dest + ".part"` exists, resume it: a 206 answer appends to it; a 200 answer (the server ignores
// Range) starts over; a 416 answer means the .part already holds the whole file when the server's
// size (Content-Range "bytes */SIZE") equals it, and that the file changed otherwise (start over).
// Before the rename, the size is checked against the server's Content-Length / Content-Range when it
// sent one. Redirects are followed (the Hub sends them to its storage); HTTPS certificates are
// verified; only http and https are allowed, redirects included.
// Throws ssm::Error naming the URL and the cause (the HTTP status, or curl's message). A failed
// transfer that received part of the body keeps it in the .part for the next call; an HTTP error
// answer (404, ...) writes nothing.
void download_file(const std::string& url, const std::string& dest, const DownloadOptions& options = {});

// The TinyStories split "train" or "valid" as a local file, <cache_dir>/tinystories/TinyStories-<split>.txt,
// downloaded from hf_dataset_url("roneneldan/TinyStories", "TinyStories-<split>.txt") when missing.
// When the download fails, the error also says how to proceed offline (a mirror, a local folder,
// or another text source).
std::string fetch_tinystories(const std::string& split, const DownloadOptions& options = {});

}  // namespace ssm::tasks
