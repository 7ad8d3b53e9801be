// Fuzz-style test for nn/safetensors.h's reader: thousands of seeded random mutations of a valid
// file go through safetensors::parse. Each must either be refused with ssm::Error, or be accepted
// with tensors whose byte sizes agree with their shapes and tile the data section. Any other
// exception fails the test; a crash or an over-read would kill the binary (and is what the ASan
// build of this test looks for). Seeded, so a failure names a case that can be replayed.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

#include "nn/safetensors.h"
#include "tensor/storage.h"

namespace {

using namespace ssm;
namespace st = ssm::safetensors;
using Bytes = std::vector<uint8_t>;

Bytes valid_file() {
  const Tensor base = Tensor::from_vector<float>({0.5f, -1, 2, 3.25f, 4, 5, -6, 7, 8, 9, 10, 11}, {4, 3});
  return st::serialize({{"emb", base},
                        {"bias", base.select(0, 1).to(DType::Float64)},
                        {"half", base.narrow(0, 0, 2).narrow(1, 0, 2).to(DType::Float16)},
                        {"bf", base.flatten().narrow(0, 2, 5).to(DType::BFloat16)},
                        {"ids", Tensor::from_vector<int32_t>({1, 2, 3}, {3})},
                        {"step", Tensor::scalar(1200, DType::Int64)},
                        {"none", Tensor::empty({0, 2})}},
                       {{"config", R"({"d_model": 32})"}, {"seed", "1234"}});
}

uint64_t read_length(const Bytes& b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(i)];
  return n;
}

void write_length(Bytes& b, uint64_t n) {
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
}

constexpr std::array<uint8_t, 18> kInteresting = {0x00, 0xff, '{', '}', '"', '[', ']', ',', ':',
                                                  '-',  '0',  '9', ' ', '\\', 'e', '.', 0x80, 0xc3};

// One random edit of `b`.
void mutate(Bytes& b, std::mt19937_64& rng) {
  const auto below = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const auto interesting = [&] { return kInteresting[below(kInteresting.size())]; };
  // The header's byte range when the length field is still sane, else the whole file.
  const uint64_t n = b.size() >= 8 ? read_length(b) : 0;
  const bool sane = b.size() >= 8 && n > 0 && n <= b.size() - 8;
  const size_t lo = sane ? 8 : 0, hi = sane ? 8 + n : b.size();
  const auto in_header = [&] { return lo + below(hi - lo); };

  switch (rng() % 10) {
    case 0:  // flip a bit anywhere
      if (!b.empty()) b[below(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    case 1:  // overwrite a header byte with an interesting one
      if (hi > lo) b[in_header()] = interesting();
      break;
    case 2:  // change a digit in the header (shapes and offsets), keeping the length
      for (int tries = 0; tries < 32 && hi > lo; ++tries) {
        const size_t at = in_header();
        if (b[at] >= '0' && b[at] <= '9') {
          b[at] = static_cast<uint8_t>('0' + rng() % 10);
          break;
        }
      }
      break;
    case 3:  // truncate
      b.resize(below(b.size() + 1));
      break;
    case 4:  // insert a few bytes anywhere
      b.insert(b.begin() + static_cast<long>(below(b.size() + 1)), 1 + below(4), interesting());
      break;
    case 5:  // insert or delete inside the header and fix the length field, so the JSON is what breaks
      if (sane) {
        const size_t at = in_header();
        if (rng() % 2) {
          b.insert(b.begin() + static_cast<long>(at), interesting());
          write_length(b, n + 1);
        } else if (n > 1) {
          b.erase(b.begin() + static_cast<long>(at));
          write_length(b, n - 1);
        }
      }
      break;
    case 6:  // corrupt the header length field
      if (b.size() >= 8) {
        const std::array<uint64_t, 6> values = {0, n - 1, n + 1, n + 8, uint64_t{1} << 63, rng()};
        write_length(b, values[below(values.size())]);
      }
      break;
    case 7:  // duplicate a chunk somewhere else
      if (!b.empty()) {
        const size_t from = below(b.size()), len = 1 + below(std::min<size_t>(32, b.size() - from));
        const Bytes chunk(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
        b.insert(b.begin() + static_cast<long>(below(b.size() + 1)), chunk.begin(), chunk.end());
      }
      break;
    case 8:  // delete a chunk
      if (!b.empty()) {
        const size_t from = below(b.size()), len = 1 + below(std::min<size_t>(16, b.size() - from));
        b.erase(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(from + len));
      }
      break;
    default:  // overwrite a data byte (leaves a valid file: values are free)
      if (b.size() > hi) b[hi + below(b.size() - hi)] = static_cast<uint8_t>(rng());
      break;
  }
}

// What must hold for a file parse() accepted.
void check_accepted(const Bytes& file, const st::Contents& c, int case_id) {
  const uint64_t data_bytes = file.size() - 8 - read_length(file);
  uint64_t total = 0;
  for (const auto& [name, t] : c.tensors) {
    const size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    ASSERT_TRUE(t.is_contiguous()) << "case " << case_id << ": " << name;
    ASSERT_EQ(t.impl_ptr()->storage->bytes(), nbytes) << "case " << case_id << ": " << name;
    total += nbytes;
  }
  ASSERT_EQ(total, data_bytes) << "case " << case_id << ": tensors do not cover the data section";
  // What was accepted can be written again, and reads back the same.
  const st::Contents again = st::parse(st::serialize(c.tensors, c.metadata), "rewritten");
  ASSERT_EQ(again.metadata, c.metadata) << "case " << case_id;
  ASSERT_EQ(again.tensors.size(), c.tensors.size()) << "case " << case_id;
  for (const auto& [name, t] : c.tensors) {
    const Tensor& u = again.tensors.at(name);
    ASSERT_EQ(u.shape(), t.shape()) << "case " << case_id << ": " << name;
    ASSERT_EQ(u.dtype(), t.dtype()) << "case " << case_id << ": " << name;
    const size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    ASSERT_TRUE(nbytes == 0 || std::memcmp(u.raw_data(), t.raw_data(), nbytes) == 0) << "case " << case_id << ": " << name;
  }
}

TEST(SafetensorsFuzz, MutatedFilesAreRefusedCleanlyOrReadConsistently) {
  const Bytes original = valid_file();
  ASSERT_NO_THROW(st::parse(original, "original"));
  constexpr int kCases = 5000;
  int accepted = 0, refused = 0;
  for (int i = 0; i < kCases; ++i) {
    std::mt19937_64 rng(0x5afe7e45u + static_cast<uint64_t>(i));  // case i replays from its own seed
    Bytes file = original;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) mutate(file, rng);
    try {
      const st::Contents c = st::parse(file, "fuzz");
      ++accepted;
      check_accepted(file, c, i);
      if (::testing::Test::HasFatalFailure()) return;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "case " << i << ": " << typeid(e).name() << " instead of ssm::Error: " << e.what();
    } catch (...) {
      FAIL() << "case " << i << ": a non-std exception";
    }
  }
  // Both outcomes must be exercised, or the mutations are too tame or too wild to test anything.
  EXPECT_GT(accepted, kCases / 20) << accepted << " accepted, " << refused << " refused";
  EXPECT_GT(refused, kCases / 2) << accepted << " accepted, " << refused << " refused";
  RecordProperty("accepted", accepted);
  RecordProperty("refused", refused);
}

}  // namespace
