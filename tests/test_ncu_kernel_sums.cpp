// tests/test_ncu_kernel_sums.cpp — tools/ncu_kernel_sums.py (docs/08 §8.8) on a small Nsight Compute CSV:
// ncu's own log lines skipped, names shortened, durations in any unit summed per kernel name, the
// largest first; a file without duration rows is an error. Skipped when python3 is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

bool have_python() { return std::system("python3 -c 'import csv' > /dev/null 2>&1") == 0; }

struct Output {
  int status;
  std::string text;
};

Output run_script(const fs::path& csv) {
  const std::string command =
      "python3 " + (fs::path(SSM_SOURCE_DIR) / "tools" / "ncu_kernel_sums.py").string() + " " + csv.string() + " 2>&1";
  Output out{0, ""};
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[512];
  while (pipe && std::fgets(buffer, sizeof buffer, pipe)) out.text += buffer;
  out.status = pipe ? pclose(pipe) : -1;
  return out;
}

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path path = fs::temp_directory_path() / ("ssm_ncu_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(NcuKernelSums, SumsDurationsPerKernelNameLargestFirst) {
  if (!have_python()) GTEST_SKIP() << "python3 is not installed";
  const std::string header = "\"ID\",\"Kernel Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n";
  const fs::path csv = write_file(
      "launches.csv",
      "==PROF== Connected to process 123\n" + header +
          "\"0\",\"void ssm::a_kernel<float>(int, float *)\",\"gpu__time_duration.sum\",\"nsecond\",\"1,500,000\"\n"
          "\"1\",\"b_kernel\",\"gpu__time_duration.sum\",\"usecond\",\"1000\"\n"
          "\"2\",\"void ssm::a_kernel<float>(int, float *)\",\"gpu__time_duration.sum\",\"ns\",\"500000\"\n"
          "\"3\",\"b_kernel\",\"sm__cycles_elapsed.avg\",\"cycle\",\"99999999\"\n"
          "==PROF== Disconnected\n");
  const Output out = run_script(csv);
  fs::remove(csv);
  ASSERT_EQ(out.status, 0) << out.text;
  // a_kernel: 1.5 + 0.5 ms in two launches (1000 µs each), 2/3 of 3 ms; b_kernel: 1 ms once; the cycle
  // metric is not a duration and is left out
  const std::string expected =
      "total 3.000 ms in 3 launches\n"
      "     2.000 ms  66.7%       2x    1000.0 us  ssm::a_kernel<float>\n"
      "     1.000 ms  33.3%       1x    1000.0 us  b_kernel\n";
  EXPECT_EQ(out.text, expected);
}

TEST(NcuKernelSums, AFileWithoutDurationsIsAnError) {
  if (!have_python()) GTEST_SKIP() << "python3 is not installed";
  const fs::path csv = write_file("empty.csv", "==PROF== nothing profiled\n");
  const Output out = run_script(csv);
  fs::remove(csv);
  EXPECT_NE(out.status, 0);
  EXPECT_NE(out.text.find("no gpu__time_duration.sum rows"), std::string::npos) << out.text;
}
