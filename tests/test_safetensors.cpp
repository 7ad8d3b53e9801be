// Tests for nn/safetensors.h.
//
//   SafetensorsRoundTrip   every dtype, 0-d and zero-size tensors, views, metadata (in memory)
//   SafetensorsDisk        save() + load(), and load()'s own errors (missing file, directory, truncation)
//   SafetensorsFormat      byte-exact files, built here from the format's definition (and one produced
//                          by the reference Python package), and the writer's argument checks
//   SafetensorsMalformed   a corpus of broken files, each refused with its own message
//   SafetensorsAtomicSave  replacing a file; failed saves leave the old file and no temp file
//   SafetensorsParity      the PyTorch-written files in ../shared/parity, checked against an
//                          independent reading of the same bytes (skipped when the folder is absent)
//   SafetensorsPython      the reference `safetensors` package reads our file and writes one for us
//                          (skipped when python3 with safetensors + numpy is not installed)
// The fuzz test is in test_safetensors_fuzz.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "nn/safetensors.h"

namespace {

using namespace ssm;
namespace st = ssm::safetensors;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using namespace std::string_literals;

// ---------------------------------------------------------------- helpers

// A tensor of `dtype` with distinct, exactly representable values (-3, -2.5, -2, ...; ints -3, -2, ...).
Tensor sample(const Shape& shape, DType dtype) {
  std::vector<double> values(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = is_floating(dtype) ? 0.5 * i - 3 : double(i) - 3;
  return Tensor::from_vector(values, shape).to(dtype);
}

// The bytes of a tensor's elements, row-major.
Bytes bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  return Bytes(p, p + c.numel() * dtype_size(c.dtype()));
}

void expect_same_tensor(const Tensor& got, const Tensor& want) {
  ASSERT_TRUE(got.defined());
  EXPECT_EQ(got.dtype(), want.dtype());
  EXPECT_EQ(got.shape(), want.shape());
  EXPECT_TRUE(got.is_contiguous());
  EXPECT_TRUE(got.device().is_cpu());
  EXPECT_EQ(bytes_of(got), bytes_of(want));
}

void append_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A file from raw header text and data; `length` overrides the header length field.
Bytes make_file(const std::string& header, const Bytes& data = {}, std::optional<uint64_t> length = {}) {
  Bytes out;
  append_u64(out, length.value_or(header.size()));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// parse() must throw ssm::Error with the standard prefix and `substring` in the message.
void expect_rejected(const Bytes& bytes, const std::string& substring) {
  SCOPED_TRACE("expecting: " + substring);
  try {
    st::parse(bytes, "bad.safetensors");
    ADD_FAILURE() << "parse accepted the file";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find("safetensors: bad.safetensors: "), 0u) << msg;
    EXPECT_NE(msg.find(substring), std::string::npos) << msg;
  }
}

// A scratch directory per test, removed afterwards.
class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("ssm_safetensors_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Files left in the directory whose name says they are a save's temp file.
  std::vector<std::string> temp_files() const {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(dir_))
      if (entry.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(entry.path().string());
    return found;
  }
  fs::path dir_;
};
class SafetensorsDisk : public SafetensorsFiles {};
class SafetensorsAtomicSave : public SafetensorsFiles {};
class SafetensorsPython : public SafetensorsFiles {};

// ---------------------------------------------------------------- round trips

TEST(SafetensorsRoundTrip, EveryDtype) {
  for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const st::TensorMap tensors = {{"t", sample({2, 3}, dtype)}};
    const st::Contents back = st::parse(st::serialize(tensors), "memory");
    ASSERT_EQ(back.tensors.size(), 1u);
    expect_same_tensor(back.tensors.at("t"), tensors.at("t"));
    EXPECT_TRUE(back.metadata.empty());
  }
}

TEST(SafetensorsRoundTrip, ScalarAndZeroSizeTensors) {
  const st::TensorMap tensors = {{"scalar_f64", Tensor::scalar(-2.75, DType::Float64)},
                                 {"scalar_i32", Tensor::scalar(7, DType::Int32)},
                                 {"empty", Tensor::empty({0}, DType::Float32)},
                                 {"empty_3d", Tensor::empty({3, 0, 2}, DType::BFloat16)},
                                 {"x", sample({4}, DType::Int64)}};
  const st::Contents back = st::parse(st::serialize(tensors), "memory");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    expect_same_tensor(back.tensors.at(name), t);
  }
  EXPECT_EQ(back.tensors.at("scalar_f64").dim(), 0);
  EXPECT_EQ(back.tensors.at("scalar_f64").item<double>(), -2.75);
  EXPECT_EQ(back.tensors.at("empty_3d").shape(), (Shape{3, 0, 2}));
}

TEST(SafetensorsRoundTrip, ViewsAreWrittenContiguous) {
  const Tensor base = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  const st::TensorMap tensors = {
      {"transposed", base.transpose(0, 1)},                        // [3, 2], not contiguous
      {"narrowed", base.narrow(1, 1, 2)},                          // [2, 2] with an offset
      {"row", base.select(0, 1)},                                  // contiguous, offset 3
      {"expanded", Tensor::from_vector<float>({7, 8}, {2}).expand({3, 2})},  // stride 0
      {"bf16_transposed", base.to(DType::BFloat16).transpose(0, 1)}};
  const st::Contents back = st::parse(st::serialize(tensors), "memory");
  EXPECT_EQ(back.tensors.at("transposed").to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(back.tensors.at("narrowed").to_vector<float>(), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_EQ(back.tensors.at("row").to_vector<float>(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(back.tensors.at("expanded").to_vector<float>(), (std::vector<float>{7, 8, 7, 8, 7, 8}));
  EXPECT_EQ(back.tensors.at("bf16_transposed").to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    expect_same_tensor(back.tensors.at(name), t);
  }
}

TEST(SafetensorsRoundTrip, Metadata) {
  const st::Metadata metadata = {{"config", R"({"d_model": 32, "ssm_cfg": {"layer": "Mamba3"}})"},
                                 {"tokenizer", "byte"},
                                 {"quote \" and \\ and \n", "tab\there"},
                                 {"unicode", "h\xc3\xa9llo \xe2\x9c\x93"},
                                 {"empty", ""}};
  const st::Contents back = st::parse(st::serialize({{"w", sample({3}, DType::Float32)}}, metadata), "memory");
  EXPECT_EQ(back.metadata, metadata);
  // Metadata alone, without tensors, is a valid file too.
  EXPECT_EQ(st::parse(st::serialize({}, metadata), "memory").metadata, metadata);
}

TEST_F(SafetensorsDisk, SaveAndLoad) {
  st::TensorMap tensors;
  for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64})
    tensors.emplace(std::string("t_") + dtype_name(dtype), sample({5, 3}, dtype));
  tensors.emplace("scalar", Tensor::scalar(1.5));
  tensors.emplace("empty", Tensor::empty({0, 4}));
  const st::Metadata metadata = {{"step", "1200"}};
  st::save(path("model.safetensors"), tensors, metadata);
  EXPECT_EQ(read_file(path("model.safetensors")), st::serialize(tensors, metadata));
  const st::Contents back = st::load(path("model.safetensors"));
  EXPECT_EQ(back.metadata, metadata);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    expect_same_tensor(back.tensors.at(name), t);
  }
  EXPECT_TRUE(temp_files().empty());
}

// ---------------------------------------------------------------- exact bytes

TEST(SafetensorsFormat, ByteExactTinyFile) {
  const st::TensorMap tensors = {{"b", Tensor::from_vector<float>({1.5f, -2.0f}, {2})},
                                 {"a", Tensor::scalar(7, DType::Int32)}};
  const Bytes file = st::serialize(tensors, {{"k", "v"}});

  // Spec: compact JSON, "__metadata__" first, tensors in name order with data in the same order,
  // each entry's fields as dtype, shape, data_offsets; spaces pad the header to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"I32","shape":[],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  ASSERT_EQ(header.size(), 132u);
  header += std::string(4, ' ');  // 132 -> 136
  Bytes expected;
  append_u64(expected, 136);
  expected.insert(expected.end(), header.begin(), header.end());
  const Bytes data = {0x07, 0x00, 0x00, 0x00,   // int32 7
                      0x00, 0x00, 0xc0, 0x3f,   // float 1.5  = 0x3fc00000
                      0x00, 0x00, 0x00, 0xc0};  // float -2.0 = 0xc0000000
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(file, expected);
  EXPECT_EQ(file[0], 136);  // little-endian length: low byte first
  EXPECT_EQ(file[1], 0);
  EXPECT_EQ((file.size() - data.size()) % 8, 0u);
}

TEST(SafetensorsFormat, SameBytesAsTheReferenceWriter) {
  // Produced by the reference package (safetensors 0.8.0):
  //   safetensors.numpy.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
  //                           "b": np.zeros(3, np.float16)}, metadata={"k": "v"})
  const std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]}})"
      "       ";
  Bytes expected = {0x90, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), header.begin(), header.end());
  const Bytes data = {0, 0, 0, 0,    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40,
                      0, 0, 0xa0, 0x40, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), data.begin(), data.end());
  const st::TensorMap tensors = {{"a", Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3})},
                                 {"b", Tensor::zeros({3}, DType::Float16)}};
  EXPECT_EQ(st::serialize(tensors, {{"k", "v"}}), expected);
  expect_same_tensor(st::parse(expected, "reference").tensors.at("a"), tensors.at("a"));
}

TEST(SafetensorsFormat, WriterRejectsBadNames) {
  const Tensor t = Tensor::zeros({2});
  const auto message = [](const st::TensorMap& tensors, const st::Metadata& metadata = {}) -> std::string {
    try {
      st::serialize(tensors, metadata);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message({{"", t}}).find("must not be empty"), std::string::npos);
  EXPECT_NE(message({{"__metadata__", t}}).find("reserved"), std::string::npos);
  EXPECT_NE(message({{"u", Tensor()}}).find("undefined"), std::string::npos);
  EXPECT_NE(message({{"bad\xff", t}}).find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(message({{"x", t}}, {{"k", "\xc3"}}).find("not valid UTF-8"), std::string::npos);
  EXPECT_EQ(std::string(st::format_dtype_name(DType::BFloat16)), "BF16");
}

// ---------------------------------------------------------------- malformed files

// A valid two-tensor file to cut and edit: "a" F32 [2] at [0, 8), "b" I64 [1] at [8, 16).
const std::string kGoodHeader =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
const Bytes kGoodData(16, 0x11);

// One entry "a" with the given fields, and `data_bytes` bytes of data.
Bytes one_tensor(const std::string& fields, size_t data_bytes = 8) {
  return make_file(R"({"a":{)" + fields + "}}", Bytes(data_bytes, 0));
}

TEST(SafetensorsMalformed, TheGoodFileParses) {
  const st::Contents c = st::parse(make_file(kGoodHeader, kGoodData), "good");
  EXPECT_EQ(c.tensors.at("a").shape(), (Shape{2}));
  EXPECT_EQ(c.tensors.at("b").dtype(), DType::Int64);
}

TEST(SafetensorsMalformed, Truncated) {
  const Bytes good = make_file(kGoodHeader, kGoodData);
  expect_rejected({}, "file is 0 bytes, shorter than the 8-byte header length");
  expect_rejected(Bytes(good.begin(), good.begin() + 5), "file is 5 bytes, shorter than the 8-byte header length");
  expect_rejected(Bytes(good.begin(), good.begin() + 8 + kGoodHeader.size() / 2), "runs past the end of the file");
  expect_rejected(Bytes(good.begin(), good.end() - 4),
                  "data_offsets [8, 16] of tensor 'b' reach past the end of the data section (12 bytes)");
  expect_rejected(Bytes(good.begin(), good.end() - 16), "reach past the end of the data section (0 bytes)");
}

TEST(SafetensorsMalformed, HeaderLength) {
  expect_rejected(make_file(kGoodHeader, kGoodData, uint64_t{1} << 63),
                  "header length 9223372036854775808 is larger than the 100000000-byte limit");
  expect_rejected(make_file(kGoodHeader, kGoodData, ~uint64_t{0}), "is larger than the 100000000-byte limit");
  expect_rejected(make_file(kGoodHeader, kGoodData, 0), "header length is 0");
  expect_rejected(make_file(kGoodHeader, kGoodData, kGoodHeader.size() + 17), "runs past the end of the file");
  // A length one too short leaves a JSON text without its closing brace.
  expect_rejected(make_file(kGoodHeader, kGoodData, kGoodHeader.size() - 1), "header is not valid JSON");
}

TEST(SafetensorsMalformed, HeaderJson) {
  expect_rejected(make_file("this is not json"), "header is not valid JSON");
  expect_rejected(make_file(R"({"a":{"dtype":"F32",)"), "header is not valid JSON");
  expect_rejected(make_file("{\"\xff\":1}"), "header is not valid JSON");  // not UTF-8
  expect_rejected(make_file("{}\0\0"s), "header is not valid JSON: it contains a NUL byte at offset 2");
  expect_rejected(make_file("{}\0garbage"s), "NUL byte");
  expect_rejected(make_file("[1, 2]"), "header must be a JSON object, got array");
  expect_rejected(make_file("\"text\""), "header must be a JSON object, got string");
  expect_rejected(make_file(R"({"a":3})"), "entry for tensor 'a' must be an object, got number");
  expect_rejected(make_file(R"({"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})"), "empty tensor name");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{}})"),
                  "header has the key 'a' twice");
  expect_rejected(one_tensor(R"("dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8])"), "key 'dtype' twice");
}

TEST(SafetensorsMalformed, Fields) {
  expect_rejected(one_tensor(R"("shape":[2],"data_offsets":[0,8])"), "tensor 'a' has no \"dtype\" field");
  expect_rejected(one_tensor(R"("dtype":"F32","data_offsets":[0,8])"), "tensor 'a' has no \"shape\" field");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2])"), "tensor 'a' has no \"data_offsets\" field");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1)"),
                  "tensor 'a' has the unexpected field 'extra'");
}

TEST(SafetensorsMalformed, Dtype) {
  expect_rejected(one_tensor(R"("dtype":"F33","shape":[2],"data_offsets":[0,8])"), "unknown dtype 'F33' for tensor 'a'");
  expect_rejected(one_tensor(R"("dtype":"f32","shape":[2],"data_offsets":[0,8])"), "unknown dtype 'f32'");
  expect_rejected(one_tensor(R"("dtype":"BOOL","shape":[8],"data_offsets":[0,8])"), "unsupported dtype BOOL for tensor 'a'");
  expect_rejected(one_tensor(R"("dtype":"U8","shape":[8],"data_offsets":[0,8])"), "unsupported dtype U8 for tensor 'a'");
  expect_rejected(one_tensor(R"("dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8])"), "unsupported dtype F8_E4M3");
  expect_rejected(one_tensor(R"("dtype":5,"shape":[2],"data_offsets":[0,8])"), "dtype of tensor 'a' must be a string, got number");
}

TEST(SafetensorsMalformed, Shape) {
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[-2],"data_offsets":[0,8])"), "shape of tensor 'a' has a negative entry -2");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])"), "has the entry 2, which is not an integer");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[1.5],"data_offsets":[0,8])"), "has the entry 1.5, which is not an integer");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":["2"],"data_offsets":[0,8])"), "shape of tensor 'a' must hold non-negative integers, found string");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":2,"data_offsets":[0,8])"), "shape of tensor 'a' must be an array, got number");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8])"),
                  "shape of tensor 'a' is too large (its element count overflows)");
  expect_rejected(one_tensor(R"("dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8])"),
                  "is too large (its byte size overflows)");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0])", 0),
                  "is too large (its element count overflows)");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8])"),
                  "has the entry 18446744073709551615, too large");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[1e30],"data_offsets":[0,8])"), "which is not an integer");
}

TEST(SafetensorsMalformed, DataOffsets) {
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,800])"),
                  "data_offsets [0, 800] of tensor 'a' reach past the end of the data section (8 bytes)");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,18446744073709551615])"),
                  "reach past the end of the data section");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[8,0])"),
                  "data_offsets [8, 0] of tensor 'a' have begin > end");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0])"), "must be two integers [begin, end], got 1");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,4,8])"), "must be two integers");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[-1,8])"), "data_offsets of tensor 'a' has a negative entry -1");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":{"begin":0})"), "must be an array, got object");
  expect_rejected(one_tensor(R"("dtype":"F32","shape":[2],"data_offsets":[0,4])", 4),
                  "tensor 'a': F32 shape [2] needs 8 bytes but data_offsets give 4");
  expect_rejected(one_tensor(R"("dtype":"BF16","shape":[2,2],"data_offsets":[0,16])", 16),
                  "BF16 shape [2, 2] needs 8 bytes but data_offsets give 16");
}

TEST(SafetensorsMalformed, ByteRangesMustTileTheDataSection) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  expect_rejected(make_file("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", Bytes(12)),
                  "tensors 'a' (bytes [0, 8)) and 'b' (bytes [4, 12)) overlap");
  expect_rejected(make_file("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", Bytes(8)), "overlap");
  expect_rejected(make_file("{" + a + R"(,"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", Bytes(8)), "overlap");
  expect_rejected(make_file("{" + a + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})", Bytes(16)),
                  "gap in the data section: bytes [8, 12) before tensor 'b' belong to no tensor");
  expect_rejected(make_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", Bytes(8)), "bytes [0, 4) before tensor 'b'");
  expect_rejected(make_file("{" + a + "}", Bytes(11)), "the last 3 bytes of the data section (11 bytes) belong to no tensor");
  expect_rejected(make_file("{}", Bytes(1)), "the last 1 bytes");
  // Zero-size tensors may sit at any boundary, including the end.
  const st::Contents ok = st::parse(
      make_file("{" + a + R"(,"z":{"dtype":"I64","shape":[3,0],"data_offsets":[8,8]},"y":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                Bytes(8)),
      "ok");
  EXPECT_EQ(ok.tensors.at("z").shape(), (Shape{3, 0}));
}

TEST(SafetensorsMalformed, Metadata) {
  expect_rejected(make_file(R"({"__metadata__":{"k":1}})"), "__metadata__ value for key 'k' must be a string, got number");
  expect_rejected(make_file(R"({"__metadata__":{"k":{"nested":"x"}}})"), "must be a string, got object");
  expect_rejected(make_file(R"({"__metadata__":["k","v"]})"), "__metadata__ must be an object of strings, got array");
  expect_rejected(make_file(R"({"__metadata__":null})"), "__metadata__ must be an object of strings, got null");
  EXPECT_EQ(st::parse(make_file(R"({"__metadata__":{"k":"v"}})"), "ok").metadata, (st::Metadata{{"k", "v"}}));
}

TEST(SafetensorsMalformed, DeeplyNestedJsonIsNotAStackOverflow) {
  const size_t depth = 200'000;  // far deeper than a recursive parser's stack allows
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  expect_rejected(make_file(nested), "header must be a JSON object, got array");
  expect_rejected(make_file(std::string(depth, '[')), "header is not valid JSON");
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":)" + nested + "}}"),
                  "shape of tensor 'a' must hold non-negative integers, found array");
  expect_rejected(make_file(R"({"__metadata__":{"k":)" + nested + "}}"), "must be a string, got array");
}

TEST(SafetensorsMalformed, LongNamesAreShortenedInMessages) {
  const std::string name(5000, 'n');
  try {
    st::parse(make_file(R"({")" + name + R"(":{"dtype":"X"}})"), "bad.safetensors");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("(5000 bytes)"), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsDisk, LoadRejectsMissingFilesDirectoriesAndBadFiles) {
  try {
    st::load(path("missing.safetensors"));
    FAIL() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path("missing.safetensors") + ": cannot open: No such file or directory"),
              std::string::npos)
        << e.what();
  }
  try {
    st::load(dir_.string());
    FAIL() << "loaded a directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
  // load() reads the file in pieces, so it runs its own size checks: each truncation gets a message.
  const Bytes good = make_file(kGoodHeader, kGoodData);
  const std::vector<std::pair<size_t, std::string>> cuts = {
      {3, "file is 3 bytes, shorter than the 8-byte header length"},
      {20, "runs past the end of the file"},
      {good.size() - 1, "reach past the end of the data section (15 bytes)"}};
  for (const auto& [size, substring] : cuts) {
    write_file(path("cut.safetensors"), std::string(good.begin(), good.begin() + static_cast<long>(size)));
    try {
      st::load(path("cut.safetensors"));
      ADD_FAILURE() << "loaded a file cut to " << size << " bytes";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find("safetensors: " + path("cut.safetensors") + ": "), 0u) << msg;
      EXPECT_NE(msg.find(substring), std::string::npos) << msg;
    }
  }
}

// ---------------------------------------------------------------- atomic save

const st::TensorMap& old_tensors() {
  static const st::TensorMap t = {{"old", Tensor::from_vector<float>({1, 2, 3}, {3})}};
  return t;
}

// The file at `p` still holds old_tensors().
void expect_old_file(const std::string& p) {
  const st::Contents c = st::load(p);
  ASSERT_EQ(c.tensors.size(), 1u);
  expect_same_tensor(c.tensors.at("old"), old_tensors().at("old"));
}

std::string save_error(const std::string& p, const st::TensorMap& tensors) {
  try {
    st::save(p, tensors);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(SafetensorsAtomicSave, SaveReplacesAnExistingFile) {
  st::save(path("m.safetensors"), old_tensors());
  expect_old_file(path("m.safetensors"));
  const st::TensorMap fresh = {{"new", sample({2, 2}, DType::Int32)}};
  st::save(path("m.safetensors"), fresh, {{"v", "2"}});
  const st::Contents c = st::load(path("m.safetensors"));
  EXPECT_EQ(c.tensors.size(), 1u);
  expect_same_tensor(c.tensors.at("new"), fresh.at("new"));
  EXPECT_EQ(c.metadata.at("v"), "2");
  EXPECT_TRUE(temp_files().empty());
}

TEST_F(SafetensorsAtomicSave, FailedSavesLeaveNoTrace) {
  // Into a directory that does not exist.
  const std::string missing = path("no/such/dir/m.safetensors");
  std::string msg = save_error(missing, old_tensors());
  EXPECT_NE(msg.find("safetensors: " + missing + ": cannot save"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  // Over a directory: the temp file is written, the rename fails, and the temp file is removed.
  fs::create_directory(path("adir"));
  msg = save_error(path("adir"), old_tensors());
  EXPECT_NE(msg.find("renaming"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Is a directory"), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_directory(path("adir")));
  EXPECT_TRUE(temp_files().empty());
}

TEST_F(SafetensorsAtomicSave, FailedSavesKeepTheExistingFile) {
  const std::string p = path("m.safetensors");
  st::save(p, old_tensors());
  const st::TensorMap fresh = {{"new", Tensor::zeros({4})}};

  // Bad input is refused before anything is written.
  EXPECT_NE(save_error(p, {{"__metadata__", Tensor::zeros({1})}}).find("reserved"), std::string::npos);
  expect_old_file(p);

  // The temp file cannot be created (its name is taken by a directory).
  const std::string temp = p + ".tmp." + std::to_string(::getpid());
  fs::create_directory(temp);
  EXPECT_NE(save_error(p, fresh).find("cannot create " + temp), std::string::npos);
  fs::remove(temp);
  expect_old_file(p);
  EXPECT_TRUE(temp_files().empty());
}

// Lowers the file size limit so that writes fail part-way (EFBIG), and restores it afterwards.
struct FileSizeLimit {
  rlimit saved{};
  void (*saved_handler)(int) = SIG_DFL;
  bool active = false;
  explicit FileSizeLimit(rlim_t bytes) {
    if (::getrlimit(RLIMIT_FSIZE, &saved) != 0) return;
    rlimit lowered = saved;
    lowered.rlim_cur = bytes;
    saved_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of being killed
    active = ::setrlimit(RLIMIT_FSIZE, &lowered) == 0;
  }
  ~FileSizeLimit() {
    if (active) ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, saved_handler);
  }
};

TEST_F(SafetensorsAtomicSave, WriteErrorPartWayKeepsTheExistingFile) {
  const std::string p = path("m.safetensors");
  st::save(p, old_tensors());
  const st::TensorMap big = {{"big", Tensor::zeros({256 * 1024})}};  // 1 MiB
  std::string msg;
  {
    FileSizeLimit limit(64 * 1024);
    if (!limit.active) GTEST_SKIP() << "cannot lower RLIMIT_FSIZE here";
    msg = save_error(p, big);
  }
  EXPECT_NE(msg.find("safetensors: " + p + ": cannot save: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  expect_old_file(p);
  EXPECT_TRUE(temp_files().empty());
  st::save(p, big);  // and with the limit gone, the same save works
  EXPECT_EQ(st::load(p).tensors.at("big").numel(), 256 * 1024);
}

// ---------------------------------------------------------------- PyTorch-written files

const fs::path kParity = fs::path(SSM_SHARED_DIR) / "parity";

// Compare our reading of `path` with an independent one: the header length by hand, the JSON by
// nlohmann directly, and each tensor's bytes (and first element) straight from the file.
void check_against_manual_read(const fs::path& path, const st::Contents& c) {
  const Bytes file = read_file(path);
  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);  // little-endian host
  ASSERT_LE(8 + n, file.size());
  const auto header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(n));
  const uint8_t* data = file.data() + 8 + n;
  const std::map<std::string, DType> dtypes = {{"F32", DType::Float32}, {"F64", DType::Float64}, {"I64", DType::Int64},
                                               {"I32", DType::Int32},   {"BF16", DType::BFloat16}, {"F16", DType::Float16}};
  size_t count = 0;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      EXPECT_EQ(c.metadata, info.get<st::Metadata>());
      continue;
    }
    SCOPED_TRACE(name);
    ++count;
    ASSERT_TRUE(c.tensors.count(name));
    const Tensor& t = c.tensors.at(name);
    EXPECT_EQ(t.dtype(), dtypes.at(info["dtype"].get<std::string>()));
    EXPECT_EQ(t.shape(), info["shape"].get<Shape>());
    const auto begin = info["data_offsets"][0].get<size_t>(), end = info["data_offsets"][1].get<size_t>();
    ASSERT_EQ(end - begin, bytes_of(t).size());
    EXPECT_EQ(std::memcmp(data + begin, t.raw_data(), end - begin), 0);
    if (t.dtype() == DType::Float32 && t.numel() > 0) {
      float first;
      std::memcpy(&first, data + begin, 4);
      EXPECT_EQ(t.data<float>()[0], first);
    }
  }
  EXPECT_EQ(count, c.tensors.size());
}

TEST(SafetensorsParity, LoadsEveryParityFile) {
  if (!fs::is_directory(kParity)) GTEST_SKIP() << "no parity folder at " << kParity;
  int files = 0;
  for (const auto& dir : fs::directory_iterator(kParity)) {
    for (const char* name : {"model.safetensors", "io.safetensors"}) {
      const fs::path path = dir.path() / name;
      if (!fs::is_regular_file(path)) continue;
      SCOPED_TRACE(path.string());
      ++files;
      const st::Contents c = st::load(path.string());
      EXPECT_FALSE(c.tensors.empty());
      check_against_manual_read(path, c);
      for (const auto& [key, t] : c.tensors) {
        if (!is_floating(t.dtype())) continue;
        for (double v : t.to_vector<double>()) ASSERT_TRUE(std::isfinite(v)) << key;
      }
    }
  }
  EXPECT_GT(files, 0);
}

TEST(SafetensorsParity, IoFilesMatchTheirModels) {
  if (!fs::is_directory(kParity)) GTEST_SKIP() << "no parity folder at " << kParity;
  for (const auto& dir : fs::directory_iterator(kParity)) {
    if (!fs::is_regular_file(dir.path() / "io.safetensors") || !fs::is_regular_file(dir.path() / "model.safetensors")) continue;
    SCOPED_TRACE(dir.path().string());
    const st::Contents model = st::load((dir.path() / "model.safetensors").string());
    const st::Contents io = st::load((dir.path() / "io.safetensors").string());
    const int64_t vocab = model.tensors.at("backbone.embedding.weight").size(0);
    const Tensor& tokens = io.tensors.at("tokens");
    ASSERT_EQ(tokens.dtype(), DType::Int64);
    ASSERT_EQ(tokens.dim(), 2);
    for (int64_t id : tokens.to_vector<int64_t>()) ASSERT_TRUE(id >= 0 && id < vocab) << id;
    const Tensor& logits = io.tensors.at("logits");
    EXPECT_EQ(logits.dtype(), DType::Float64);
    EXPECT_EQ(logits.shape(), (Shape{tokens.size(0), tokens.size(1), vocab}));
    EXPECT_EQ(io.tensors.at("step_logits").shape(), logits.shape());
    EXPECT_EQ(io.tensors.at("loss").shape(), (Shape{1}));
    for (const auto& [key, p] : model.tensors) {
      ASSERT_TRUE(io.tensors.count("grad." + key)) << key;
      EXPECT_EQ(io.tensors.at("grad." + key).shape(), p.shape()) << key;
    }
  }
}

TEST(SafetensorsParity, Mamba2TinyShapes) {
  const fs::path dir = kParity / "mamba2-tiny";
  if (!fs::is_regular_file(dir / "model.safetensors")) GTEST_SKIP() << "no " << dir / "model.safetensors";
  const st::Contents c = st::load((dir / "model.safetensors").string());
  const auto at = [&](const std::string& key) -> const Tensor& {
    EXPECT_TRUE(c.tensors.count(key)) << key;
    return c.tensors.at(key);
  };
  // d_model 32, d_inner = 2 * 32 = 64, d_state N = 16, ngroups G = 1, headdim 8 -> H = 8, d_conv 4.
  EXPECT_EQ(at("backbone.embedding.weight").shape(), (Shape{56, 32}));  // vocab 50 padded to a multiple of 8
  EXPECT_EQ(at("backbone.embedding.weight").dtype(), DType::Float32);
  EXPECT_EQ(at("backbone.layers.0.mixer.conv1d.weight").shape(), (Shape{64 + 2 * 16, 1, 4}));
  EXPECT_EQ(at("backbone.layers.0.mixer.in_proj.weight").shape(), (Shape{2 * 64 + 2 * 16 + 8, 32}));
  EXPECT_EQ(at("backbone.layers.1.mixer.out_proj.weight").shape(), (Shape{32, 64}));
  EXPECT_EQ(at("backbone.norm_f.weight").shape(), (Shape{32}));
  // The same shapes from config.json, by the formulas of ../shared/parity/README.md.
  if (fs::is_regular_file(dir / "config.json")) {
    std::ifstream in(dir / "config.json");
    const auto config = nlohmann::json::parse(in);
    const int64_t d_model = config["d_model"], pad = config["pad_vocab_size_multiple"], vocab = config["vocab_size"];
    const auto& ssm = config["ssm_cfg"];
    const int64_t d_inner = ssm["expand"].get<int64_t>() * d_model, N = ssm["d_state"], G = ssm["ngroups"];
    const int64_t H = d_inner / ssm["headdim"].get<int64_t>(), K = ssm["d_conv"];
    EXPECT_EQ(at("backbone.embedding.weight").shape(), (Shape{(vocab + pad - 1) / pad * pad, d_model}));
    EXPECT_EQ(at("backbone.layers.0.mixer.conv1d.weight").shape(), (Shape{d_inner + 2 * G * N, 1, K}));
    EXPECT_EQ(at("backbone.layers.0.mixer.in_proj.weight").shape(), (Shape{2 * d_inner + 2 * G * N + H, d_model}));
    EXPECT_EQ(at("backbone.layers.0.mixer.A_log").shape(), (Shape{H}));
  }
  EXPECT_FALSE(c.tensors.count("lm_head.weight"));  // tied to the embedding, left out
  EXPECT_EQ(c.metadata.at("vocab_padded"), "56");
}

// ---------------------------------------------------------------- the reference Python package

bool python_has_safetensors() {
  return std::system("python3 -c 'import safetensors, numpy' > /dev/null 2>&1") == 0;
}

// Reads the files our writer made with the reference package (its Rust parser validates the whole
// file) and checks every value; then writes a file with numpy for the C++ side to read.
const char* kPythonCheck = R"PY(
import sys, numpy as np, safetensors
from safetensors import safe_open, deserialize
from safetensors.numpy import load_file, save_file

ours, ours_numpy, theirs = sys.argv[1:4]
expected = {
    "f32": ("F32", np.float32, [2, 3], [0.5, -1.25, 3, 4.75, -8, 1024]),
    "f64": ("F64", np.float64, [3], [1 / 3, -2.5, 1e300]),
    "f16": ("F16", np.float16, [2, 2], [1, -0.5, 2048, 65504]),
    "i32": ("I32", np.int32, [2], [-7, 2147483647]),
    "i64": ("I64", np.int64, [2, 1], [-(1 << 40), 9007199254740993]),
    "scalar": ("F32", np.float32, [], [42]),
    "empty": ("F32", np.float32, [0, 3], []),
    "transposed": ("F32", np.float32, [3, 2], [1, 4, 2, 5, 3, 6]),
}
metadata = {"config": '{"d_model": 32}', "note": "h\u00e9llo \u2713", "quote": 'a"b\\c'}

# 1. The reference parser accepts the file; raw bytes, dtypes and shapes per tensor.
raw = dict(deserialize(open(ours, "rb").read()))
assert set(raw) == set(expected) | {"bf16"}, sorted(raw)
for name, (tag, dtype, shape, values) in expected.items():
    assert raw[name]["dtype"] == tag and list(raw[name]["shape"]) == shape, (name, raw[name]["dtype"], raw[name]["shape"])
    got = np.frombuffer(bytes(raw[name]["data"]), dtype="<" + np.dtype(dtype).str[1:]).reshape(shape)
    assert np.array_equal(got, np.array(values, dtype=dtype).reshape(shape)), (name, got)
# numpy has no bfloat16: widen the raw 16-bit patterns to float32 by hand.
assert raw["bf16"]["dtype"] == "BF16" and list(raw["bf16"]["shape"]) == [3]
bf16 = (np.frombuffer(bytes(raw["bf16"]["data"]), dtype="<u2").astype(np.uint32) << 16).view(np.float32)
assert bf16.tolist() == [1.0, -3.5, 256.0], bf16

# 2. safe_open: metadata, and every numpy-representable tensor.
with safe_open(ours, framework="numpy") as f:
    assert f.metadata() == metadata, f.metadata()
    for name in expected:
        assert f.get_tensor(name).dtype == expected[name][1], name

# 3. safetensors.numpy.load_file on the same tensors without the bf16 one.
arrays = load_file(ours_numpy)
for name, (tag, dtype, shape, values) in expected.items():
    a = arrays[name]
    assert a.dtype == dtype and list(a.shape) == shape, (name, a.dtype, a.shape)
    assert np.array_equal(a, np.array(values, dtype=dtype).reshape(shape)), (name, a)

# 4. PyTorch too, when it is installed.
try:
    import torch
    from safetensors.torch import load_file as torch_load_file
    t = torch_load_file(ours)
    assert t["bf16"].dtype == torch.bfloat16 and t["bf16"].float().tolist() == [1.0, -3.5, 256.0]
    assert t["f32"].tolist() == [[0.5, -1.25, 3.0], [4.75, -8.0, 1024.0]]
    torch_note = "safetensors.torch.load_file ok (torch " + torch.__version__ + ")"
except ImportError:
    torch_note = "torch not installed, safetensors.torch not tried"

# 5. A file for the C++ side.
save_file({"np_f64": np.array([[1.5, -2.0], [3.0, 1e-300]]),
           "np_f16": np.array([0.5, -65504], dtype=np.float16),
           "np_i32": np.arange(-3, 3, dtype=np.int32),
           "np_i64": np.array([1 << 50], dtype=np.int64),
           "np_scalar": np.array(7, dtype=np.float32),
           "np_empty": np.zeros((2, 0), dtype=np.float32)},
          theirs, metadata={"writer": "safetensors.numpy"})

print("python check: safetensors", safetensors.__version__, "numpy", np.__version__)
print("python check: deserialize() accepted", len(raw), "tensors; values, dtypes, shapes match:", sorted(raw))
print("python check: safe_open metadata matches:", sorted(metadata))
print("python check: safetensors.numpy.load_file read", len(arrays), "arrays, all equal")
print("python check:", torch_note)
)PY";

TEST_F(SafetensorsPython, PythonReadsOurFilesAndWritesOneWeRead) {
  if (!python_has_safetensors())
    GTEST_SKIP() << "python3 with the safetensors and numpy packages is not installed (pip install safetensors numpy)";
  const Tensor base = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  st::TensorMap tensors = {
      {"f32", Tensor::from_vector<float>({0.5f, -1.25f, 3, 4.75f, -8, 1024}, {2, 3})},
      {"f64", Tensor::from_vector<double>({1.0 / 3, -2.5, 1e300}, {3})},
      {"f16", Tensor::from_vector<float>({1, -0.5f, 2048, 65504}, {2, 2}).to(DType::Float16)},
      {"i32", Tensor::from_vector<int32_t>({-7, 2147483647}, {2})},
      {"i64", Tensor::from_vector<int64_t>({-(int64_t{1} << 40), 9007199254740993}, {2, 1})},
      {"scalar", Tensor::scalar(42)},
      {"empty", Tensor::empty({0, 3})},
      {"transposed", base.transpose(0, 1)}};
  const st::Metadata metadata = {{"config", R"({"d_model": 32})"}, {"note", "h\xc3\xa9llo \xe2\x9c\x93"}, {"quote", "a\"b\\c"}};
  st::save(path("ours_numpy.safetensors"), tensors, metadata);
  tensors.emplace("bf16", Tensor::from_vector<float>({1, -3.5f, 256}, {3}).to(DType::BFloat16));
  st::save(path("ours.safetensors"), tensors, metadata);
  write_file(path("check.py"), kPythonCheck);

  const std::string command = "python3 '" + path("check.py") + "' '" + path("ours.safetensors") + "' '" +
                              path("ours_numpy.safetensors") + "' '" + path("theirs.safetensors") + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << "the Python check failed: " << command;

  const st::Contents theirs = st::load(path("theirs.safetensors"));
  EXPECT_EQ(theirs.metadata, (st::Metadata{{"writer", "safetensors.numpy"}}));
  EXPECT_EQ(theirs.tensors.at("np_f64").to_vector<double>(), (std::vector<double>{1.5, -2.0, 3.0, 1e-300}));
  EXPECT_EQ(theirs.tensors.at("np_f16").dtype(), DType::Float16);
  EXPECT_EQ(theirs.tensors.at("np_f16").to_vector<float>(), (std::vector<float>{0.5f, -65504.0f}));
  EXPECT_EQ(theirs.tensors.at("np_i32").to_vector<int32_t>(), (std::vector<int32_t>{-3, -2, -1, 0, 1, 2}));
  EXPECT_EQ(theirs.tensors.at("np_i64").to_vector<int64_t>(), (std::vector<int64_t>{int64_t{1} << 50}));
  EXPECT_EQ(theirs.tensors.at("np_scalar").dim(), 0);
  EXPECT_EQ(theirs.tensors.at("np_scalar").item<float>(), 7.0f);
  EXPECT_EQ(theirs.tensors.at("np_empty").shape(), (Shape{2, 0}));
}

}  // namespace
