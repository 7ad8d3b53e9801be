// nn/safetensors.h — read and write checkpoints in the safetensors format (Hugging Face).
//
// The format, byte for byte:
//   [8 bytes]  N, the header length, an unsigned 64-bit little-endian integer
//   [N bytes]  the header: UTF-8 JSON, one object
//                {"__metadata__": {"key": "value", ...},                       (optional, strings only)
//                 "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   [rest]     the data section: each tensor's elements, row-major, little-endian, at
//              [begin, end) counted from the start of the data section.
// Supported dtypes: F32, F64, BF16, F16, I32, I64 (the engine's DTypes). Files written here load with
// `safetensors.torch.load_file` / `safetensors.numpy.load_file`, and PyTorch-written files load here.
//
// Reading validates everything before it allocates or copies anything, and every problem is an
// ssm::Error whose message starts "safetensors: <file>: " and names the tensor involved. A file
// from disk is untrusted input: a corrupt or truncated checkpoint must produce a clear message,
// never a crash, an over-read or a huge allocation. The checks:
//   * the file holds at least the 8-byte length; 0 < N <= 100 MB (the reference limit) and N fits in the file;
//   * the header is valid UTF-8 JSON (parsed by nlohmann_json), a top-level object with no duplicate keys;
//   * each entry is an object with exactly the fields dtype, shape, data_offsets; names are non-empty;
//   * dtype is one of the six above (other real safetensors dtypes are named "unsupported");
//   * shape is an array of non-negative integers whose product (and byte size) does not overflow;
//   * data_offsets are two non-negative integers, begin <= end, end inside the data section, and
//     end - begin equals numel * element size;
//   * the byte ranges tile the data section exactly, like the reference implementation requires:
//     no overlap, no gap, no trailing bytes;
//   * __metadata__, when present, is an object of strings.
//
// Writing lays the tensors out in name order (std::map order), contiguous; the header lists
// "__metadata__" first (left out when empty), then the tensors, each {"dtype","shape","data_offsets"},
// compact JSON padded with spaces to a multiple of 8 bytes. save() is atomic: it writes
// "<path>.tmp.<pid>", flushes and fsyncs it, then renames it over <path>, so an existing file is
// either replaced whole or left as it was.
//
// Not done here: mapping names to module parameters (nn/module.h's state dict does that), dtype
// conversion on load (tensors come back in their stored dtype), big-endian hosts (refused at
// compile time), and memory-mapping.
// Tests: tests/test_safetensors.cpp (round trips, byte-exact layout, a malformed-file corpus, atomic
// save, the PyTorch-written parity files, a Python read-back) and tests/test_safetensors_fuzz.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ssm::safetensors {

using TensorMap = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

struct Contents {
  TensorMap tensors;  // CPU tensors, contiguous, in the dtype they were stored in
  Metadata metadata;  // the header's __metadata__ (model config, tokenizer, training state, ...)
};

// The largest header accepted (and written), as in the reference implementation.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Read and validate a whole file. The data goes straight from the file into the tensors.
Contents load(const std::string& path);

// Validate and decode a file already in memory; `source_name` names it in error messages.
Contents parse(std::span<const uint8_t> bytes, const std::string& source_name);

// The file's bytes. Tensors may be views on any device; they are written contiguous from the CPU.
// Throws ssm::Error for an undefined tensor, an empty name, the name "__metadata__", or a name or
// metadata string that is not valid UTF-8.
std::vector<uint8_t> serialize(const TensorMap& tensors, const Metadata& metadata = {});

// serialize() into `path`, atomically (temp file, flush, fsync, rename, fsync of the directory).
void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

// "F32", "F64", "BF16", "F16", "I32", "I64": the format's name for a dtype.
const char* format_dtype_name(DType dtype);

}  // namespace ssm::safetensors
