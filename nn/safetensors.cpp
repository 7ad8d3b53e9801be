// nn/safetensors.cpp — see safetensors.h for the format and the contract.
//
// Layout of this file: error helpers; the dtype table; reading (header length, header JSON ->
// validated entries, then copying the bytes: from memory in parse(), from the file in load());
// writing (a "plan" — header bytes plus contiguous CPU tensors — shared by serialize() and save()).
#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ssm::safetensors {

// The data section is little-endian and is copied to and from tensors as is.
static_assert(std::endian::native == std::endian::little, "safetensors: only little-endian hosts are supported");

namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------- errors

// Every message starts "safetensors: <source>: ".
template <class... Parts>
[[noreturn]] void fail(const std::string& source, const Parts&... parts) {
  throw Error(detail::concat("safetensors: ", source, ": ", parts...));
}

// A name for a message: quoted, and cut short so that a hostile header cannot make a huge message.
std::string quote_name(std::string_view name) {
  constexpr size_t kMax = 200;
  if (name.size() <= kMax) return detail::concat('\'', name, '\'');
  return detail::concat('\'', name.substr(0, kMax), "...' (", name.size(), " bytes)");
}

std::string errno_text(int err) { return err != 0 ? std::strerror(err) : "unknown I/O error"; }

// ---------------------------------------------------------------- dtypes

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr std::array<DTypeName, 6> kDTypes = {{{"F32", DType::Float32},
                                               {"F64", DType::Float64},
                                               {"BF16", DType::BFloat16},
                                               {"F16", DType::Float16},
                                               {"I32", DType::Int32},
                                               {"I64", DType::Int64}}};
// Real safetensors dtypes the engine has no DType for: named "unsupported" rather than "unknown".
constexpr std::array<const char*, 15> kUnsupportedDTypes = {"BOOL",    "U8",      "I8",      "I16",     "U16",
                                                            "U32",     "U64",     "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                                            "F6_E2M3", "F6_E3M2", "F4",      "C64",     "F8_E4M3FNUZ"};

// ---------------------------------------------------------------- reading

// One validated header entry. nbytes = end - begin = numel(shape) * dtype_size(dtype).
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> entries;  // sorted by data_offsets, i.e. in file order
  Metadata metadata;
};

// Multiply without overflow into int64; false when the product does not fit.
bool checked_mul(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

// The header length from the first 8 bytes, checked against the file size.
uint64_t header_length(std::span<const uint8_t> first8, uint64_t file_size, const std::string& source) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | first8[static_cast<size_t>(i)];  // little-endian
  if (n == 0) fail(source, "header length is 0 (a file has at least the header \"{}\")");
  if (n > kMaxHeaderBytes)
    fail(source, "header length ", n, " is larger than the ", kMaxHeaderBytes, "-byte limit (not a safetensors file, or corrupt)");
  if (n > file_size - 8)
    fail(source, "header length ", n, " runs past the end of the file (", file_size, " bytes): the file is truncated or corrupt");
  return n;
}

// Parse the JSON text with nlohmann, refusing duplicate keys in the top-level object and in the
// objects directly inside it, the entries and __metadata__ (nlohmann would silently keep the last).
Json parse_json(std::span<const uint8_t> text, const std::string& source) {
  int depth = 0;                 // open objects and arrays
  std::set<std::string> keys[2];  // keys of the open object at nesting level 0 (top) and 1 (an entry)
  std::string duplicate;
  const Json::parser_callback_t check_keys = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        if (depth < 2) keys[depth].clear();
        ++depth;
        break;
      case Json::parse_event_t::array_start: ++depth; break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end: --depth; break;
      case Json::parse_event_t::key:
        if (depth >= 1 && depth <= 2 && duplicate.empty() && !keys[depth - 1].insert(parsed.get<std::string>()).second)
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the text ended there; JSON text never contains one.
  if (const auto nul = std::find(text.begin(), text.end(), uint8_t{0}); nul != text.end())
    fail(source, "header is not valid JSON: it contains a NUL byte at offset ", nul - text.begin());
  Json root;
  try {
    const char* begin = reinterpret_cast<const char*>(text.data());
    root = Json::parse(begin, begin + text.size(), check_keys);
  } catch (const Json::exception& e) {
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    fail(source, "header is not valid JSON: ", what);
  }
  if (!duplicate.empty()) fail(source, "header has the key ", quote_name(duplicate), " twice");
  return root;
}

DType parse_dtype(const Json& value, const std::string& name, const std::string& source) {
  if (!value.is_string()) fail(source, "dtype of tensor ", quote_name(name), " must be a string, got ", value.type_name());
  const std::string& text = value.get_ref<const std::string&>();
  for (const DTypeName& d : kDTypes)
    if (text == d.name) return d.dtype;
  for (const char* unsupported : kUnsupportedDTypes)
    if (text == unsupported)
      fail(source, "unsupported dtype ", text, " for tensor ", quote_name(name), " (supported: F32, F64, BF16, F16, I32, I64)");
  fail(source, "unknown dtype ", quote_name(text), " for tensor ", quote_name(name));
}

// A JSON array of non-negative integers; each must also fit in `max`.
std::vector<uint64_t> parse_uints(const Json& value, const char* field, const std::string& name, uint64_t max,
                                  const std::string& source) {
  if (!value.is_array()) fail(source, field, " of tensor ", quote_name(name), " must be an array, got ", value.type_name());
  std::vector<uint64_t> out;
  for (const Json& item : value) {
    if (item.is_number_integer() && !item.is_number_unsigned())  // nlohmann: negative integers only
      fail(source, field, " of tensor ", quote_name(name), " has a negative entry ", item.get<int64_t>());
    if (item.is_number_float())
      fail(source, field, " of tensor ", quote_name(name), " has the entry ", item.get<double>(), ", which is not an integer");
    if (!item.is_number_unsigned())
      fail(source, field, " of tensor ", quote_name(name), " must hold non-negative integers, found ", item.type_name());
    const uint64_t v = item.get<uint64_t>();
    if (v > max) fail(source, field, " of tensor ", quote_name(name), " has the entry ", v, ", too large");
    out.push_back(v);
  }
  return out;
}

// One tensor's entry: exactly the three fields, each well-formed and consistent with the others
// and with the size of the data section.
Entry parse_entry(const std::string& name, const Json& value, uint64_t data_bytes, const std::string& source) {
  if (name.empty()) fail(source, "header has an empty tensor name");
  if (!value.is_object()) fail(source, "entry for tensor ", quote_name(name), " must be an object, got ", value.type_name());
  for (const auto& field : value.items())
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
      fail(source, "tensor ", quote_name(name), " has the unexpected field ", quote_name(field.key()));
  const auto field = [&](const char* key) -> const Json& {
    const auto it = value.find(key);
    if (it == value.end()) fail(source, "tensor ", quote_name(name), " has no \"", key, "\" field");
    return *it;
  };

  Entry e{name, parse_dtype(field("dtype"), name, source), {}, 0, 0};

  // shape: the element count (and every stride) must fit in int64. Zero dims are counted as 1 here
  // so that [0, 2^40, 2^40] is refused too: its strides would overflow.
  int64_t bound = 1, numel = 1;
  for (uint64_t d : parse_uints(field("shape"), "shape", name, std::numeric_limits<int64_t>::max(), source)) {
    const auto dim = static_cast<int64_t>(d);
    if (!checked_mul(bound, std::max<int64_t>(dim, 1), bound))
      fail(source, "shape of tensor ", quote_name(name), " is too large (its element count overflows)");
    numel *= dim;  // <= bound, cannot overflow
    e.shape.push_back(dim);
  }
  int64_t nbytes = 0;
  if (!checked_mul(numel, static_cast<int64_t>(dtype_size(e.dtype)), nbytes))
    fail(source, "shape of tensor ", quote_name(name), " is too large (its byte size overflows)");

  const std::vector<uint64_t> offsets =
      parse_uints(field("data_offsets"), "data_offsets", name, std::numeric_limits<uint64_t>::max(), source);
  if (offsets.size() != 2)
    fail(source, "data_offsets of tensor ", quote_name(name), " must be two integers [begin, end], got ", offsets.size());
  e.begin = offsets[0];
  e.end = offsets[1];
  if (e.begin > e.end) fail(source, "data_offsets [", e.begin, ", ", e.end, "] of tensor ", quote_name(name), " have begin > end");
  if (e.end > data_bytes)
    fail(source, "data_offsets [", e.begin, ", ", e.end, "] of tensor ", quote_name(name), " reach past the end of the data section (",
         data_bytes, " bytes): the file is truncated or corrupt");
  if (e.end - e.begin != static_cast<uint64_t>(nbytes))
    fail(source, "tensor ", quote_name(name), ": ", format_dtype_name(e.dtype), " shape ", shape_str(e.shape), " needs ", nbytes,
         " bytes but data_offsets give ", e.end - e.begin);
  return e;
}

// The whole header: entries and metadata, then the check that the byte ranges tile the data section.
Header parse_header(std::span<const uint8_t> text, uint64_t data_bytes, const std::string& source) {
  const Json root = parse_json(text, source);
  if (!root.is_object()) fail(source, "header must be a JSON object, got ", root.type_name());

  Header header;
  for (const auto& item : root.items()) {
    if (item.key() != "__metadata__") {
      header.entries.push_back(parse_entry(item.key(), item.value(), data_bytes, source));
      continue;
    }
    if (!item.value().is_object()) fail(source, "__metadata__ must be an object of strings, got ", item.value().type_name());
    for (const auto& m : item.value().items()) {
      if (!m.value().is_string())
        fail(source, "__metadata__ value for key ", quote_name(m.key()), " must be a string, got ", m.value().type_name());
      header.metadata.emplace(m.key(), m.value().get<std::string>());
    }
  }

  // In file order, each range must start where the previous one ended, and the last must end at
  // the end of the data section: anything else is an overlap, a hole, or unexplained bytes.
  std::sort(header.entries.begin(), header.entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t pos = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : header.entries) {
    if (e.begin < pos)
      fail(source, "tensors ", quote_name(previous->name), " (bytes [", previous->begin, ", ", previous->end, ")) and ", quote_name(e.name),
           " (bytes [", e.begin, ", ", e.end, ")) overlap");
    if (e.begin > pos)
      fail(source, "gap in the data section: bytes [", pos, ", ", e.begin, ") before tensor ", quote_name(e.name),
           " belong to no tensor");
    pos = e.end;
    previous = &e;
  }
  if (pos != data_bytes)
    fail(source, "the last ", data_bytes - pos, " bytes of the data section (", data_bytes, " bytes) belong to no tensor");
  return header;
}

// Allocate each tensor and let `fill(destination, entry)` copy its bytes, in file order.
template <class Fill>
Contents assemble(Header header, Fill&& fill) {
  Contents out;
  out.metadata = std::move(header.metadata);
  for (Entry& e : header.entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) fill(t.raw_data(), e);
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

// A FILE* that closes itself (reading only: a failed close loses nothing).
struct InputFile {
  std::FILE* f;
  explicit InputFile(const std::string& path) : f(std::fopen(path.c_str(), "rb")) {}
  ~InputFile() {
    if (f) std::fclose(f);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
};

void read_exact(std::FILE* f, void* destination, size_t bytes, const std::string& path) {
  errno = 0;
  if (std::fread(destination, 1, bytes, f) == bytes) return;
  if (std::ferror(f)) fail(path, "read error: ", errno_text(errno));
  fail(path, "unexpected end of file (was it changed while being read?)");
}

// ---------------------------------------------------------------- writing

// What serialize() and save() write: the 8-byte length and the padded header, then the tensors'
// bytes in order (each contiguous, on the CPU).
struct Plan {
  std::vector<uint8_t> prefix;
  std::vector<Tensor> tensors;
  uint64_t data_bytes = 0;
};

Plan make_plan(const TensorMap& tensors, const Metadata& metadata, const std::string& context) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // keeps insertion order
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Plan plan;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty()) fail(context, "a tensor name must not be empty");
    if (name == "__metadata__") fail(context, "\"__metadata__\" is reserved and cannot name a tensor");
    if (!tensor.defined()) fail(context, "tensor ", quote_name(name), " is undefined");
    const Tensor cpu = tensor.to(Device::cpu()).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(cpu.numel()) * dtype_size(cpu.dtype());
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = format_dtype_name(cpu.dtype());
    entry["shape"] = cpu.shape();
    entry["data_offsets"] = nlohmann::ordered_json::array({plan.data_bytes, plan.data_bytes + nbytes});
    header[name] = std::move(entry);
    plan.data_bytes += nbytes;
    plan.tensors.push_back(cpu);
  }
  std::string text;
  try {
    text = header.dump();  // compact, UTF-8; throws on a string that is not valid UTF-8
  } catch (const nlohmann::ordered_json::exception& e) {
    fail(context, "a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so that the data section starts 8-byte aligned
  if (text.size() > kMaxHeaderBytes) fail(context, "header of ", text.size(), " bytes exceeds the ", kMaxHeaderBytes, "-byte limit");
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) plan.prefix.push_back(static_cast<uint8_t>(n >> (8 * i)));  // little-endian
  plan.prefix.insert(plan.prefix.end(), text.begin(), text.end());
  return plan;
}

size_t tensor_bytes(const Tensor& t) { return static_cast<size_t>(t.numel()) * dtype_size(t.dtype()); }

// Best effort: make the rename itself durable. Failure here cannot be acted on, so it is ignored.
void fsync_directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  (void)::close(fd);
}

}  // namespace

const char* format_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  throw Error(detail::concat("safetensors: no format name for dtype ", dtype_name(dtype)));
}

// ---------------------------------------------------------------- public API

Contents parse(std::span<const uint8_t> bytes, const std::string& source_name) {
  if (bytes.size() < 8)
    fail(source_name, "file is ", bytes.size(), " bytes, shorter than the 8-byte header length: truncated or not a safetensors file");
  const uint64_t n = header_length(bytes.first(8), bytes.size(), source_name);
  const std::span<const uint8_t> data = bytes.subspan(8 + n);
  Header header = parse_header(bytes.subspan(8, n), data.size(), source_name);
  return assemble(std::move(header), [&](void* destination, const Entry& e) {
    const std::span<const uint8_t> range = data.subspan(e.begin, e.end - e.begin);  // validated: inside `data`
    std::memcpy(destination, range.data(), range.size());
  });
}

Contents load(const std::string& path) {
  InputFile file(path);
  if (!file.f) fail(path, "cannot open: ", errno_text(errno));
  struct stat st {};
  if (::fstat(::fileno(file.f), &st) != 0) fail(path, "cannot stat: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    fail(path, "file is ", file_size, " bytes, shorter than the 8-byte header length: truncated or not a safetensors file");

  std::array<uint8_t, 8> first8{};
  read_exact(file.f, first8.data(), 8, path);
  const uint64_t n = header_length(first8, file_size, path);
  std::vector<uint8_t> text(n);
  read_exact(file.f, text.data(), n, path);
  Header header = parse_header(text, file_size - 8 - n, path);
  // The ranges tile the data section in this order, so the tensors are read sequentially.
  return assemble(std::move(header),
                  [&](void* destination, const Entry& e) { read_exact(file.f, destination, e.end - e.begin, path); });
}

std::vector<uint8_t> serialize(const TensorMap& tensors, const Metadata& metadata) {
  const Plan plan = make_plan(tensors, metadata, "serialize");
  std::vector<uint8_t> out(plan.prefix.size() + plan.data_bytes);
  std::memcpy(out.data(), plan.prefix.data(), plan.prefix.size());
  size_t pos = plan.prefix.size();
  for (const Tensor& t : plan.tensors) {
    const size_t n = tensor_bytes(t);
    if (n > 0) std::memcpy(out.data() + pos, t.raw_data(), n);
    pos += n;
  }
  return out;
}

void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  const Plan plan = make_plan(tensors, metadata, path);  // bad input fails before the disk is touched
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  if (!f) fail(path, "cannot save: cannot create ", temp, ": ", errno_text(errno));

  // On any failure: keep errno, close and delete the temp file, leave `path` as it was.
  const auto abandon = [&](const char* step) {
    const int err = errno;
    if (f) std::fclose(f);
    std::remove(temp.c_str());
    fail(path, "cannot save: ", step, " ", temp, " failed: ", errno_text(err));
  };
  const auto write = [&](const void* bytes, size_t n) {
    errno = 0;
    if (n > 0 && std::fwrite(bytes, 1, n, f) != n) abandon("writing");
  };
  write(plan.prefix.data(), plan.prefix.size());
  for (const Tensor& t : plan.tensors) write(t.raw_data(), tensor_bytes(t));
  errno = 0;
  if (std::fflush(f) != 0) abandon("flushing");
  if (::fsync(::fileno(f)) != 0) abandon("syncing");
  const int closed = std::fclose(f);
  f = nullptr;
  if (closed != 0) abandon("closing");
  if (std::rename(temp.c_str(), path.c_str()) != 0) abandon("renaming");
  fsync_directory_of(path);
}

}  // namespace ssm::safetensors
