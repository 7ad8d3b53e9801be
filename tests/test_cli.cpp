// The command-line tools as a user runs them (built beside the tests): help, usage errors and exit codes,
// --list / --dry-run, pretraining the debug experiment, fine-tuning on SPO from it, inference, generation,
// and Ctrl-C during training leaving a checkpoint that loads.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "task_test_helpers.h"
#include "tasks/run_checkpoint.h"

extern char** environ;

using ssm::testing::read_file;
using ssm::testing::ScopedEnv;
using ssm::testing::ScopedTempDir;

namespace {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Start a tool from the repository root (where experiments.toml is), its output going to files in `dir`.
pid_t spawn_tool(const std::string& tool, const std::vector<std::string>& args, const ScopedTempDir& dir) {
  const std::string program = std::string(SSM_TOOLS_DIR) + "/" + tool;
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, (dir / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, 2, (dir / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&files, SSM_SOURCE_DIR);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, program.c_str(), &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  EXPECT_EQ(error, 0) << "cannot start " << program;
  return error == 0 ? pid : -1;  // -1: no process (kill(-1) or waitpid(-1) would reach every other one)
}

RunResult finish(pid_t pid, const ScopedTempDir& dir) {
  if (pid <= 0) return {-1, "", "the tool did not start"};
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(dir / "stdout"),
          read_file(dir / "stderr")};
}

RunResult run_tool(const std::string& tool, const std::vector<std::string>& args) {
  ScopedTempDir output;
  return finish(spawn_tool(tool, args, output), output);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

size_t count_lines(const std::string& text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST(Cli, HelpDocumentsTheFlagsAndExitsZero) {
  for (const char* tool : {"ssm-train", "ssm-infer", "ssm-generate"}) {
    const RunResult r = run_tool(tool, {"--help"});
    EXPECT_EQ(r.exit_code, 0) << tool;
    EXPECT_TRUE(contains(r.out, "usage: ")) << r.out;
    EXPECT_TRUE(contains(r.out, "--experiment")) << r.out;
    EXPECT_TRUE(contains(r.out, "--config")) << r.out;
  }
  const RunResult train = run_tool("ssm-train", {"--help"});
  for (const char* flag : {"--set", "--list", "--dry-run", "--resume", "--d-state", "--text-file", "--init-checkpoint"})
    EXPECT_TRUE(contains(train.out, flag)) << flag;
  const RunResult generate = run_tool("ssm-generate", {"--help"});
  for (const char* flag : {"--prompt", "--temperature", "--top-k", "--top-p", "--seed", "--max-new-tokens", "--checkpoint"})
    EXPECT_TRUE(contains(generate.out, flag)) << flag;
}

TEST(Cli, BadCommandLinesFailWithOneLineNamingTheCause) {
  const RunResult unknown = run_tool("ssm-train", {"--experiment", "tinystories-mamba3", "--stepz", "3"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(count_lines(unknown.err), 1u) << unknown.err;
  EXPECT_TRUE(contains(unknown.err, "--stepz")) << unknown.err;

  const RunResult nothing = run_tool("ssm-train", {});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_TRUE(contains(nothing.err, "--experiment")) << nothing.err;

  const RunResult no_such = run_tool("ssm-train", {"--experiment", "tinystories-mamba4", "--dry-run"});
  EXPECT_NE(no_such.exit_code, 0);
  EXPECT_EQ(count_lines(no_such.err), 1u) << no_such.err;
  EXPECT_TRUE(contains(no_such.err, "tinystories-mamba4")) << no_such.err;

  const RunResult bad_set = run_tool("ssm-train", {"--experiment", "tinystories-mamba3", "--set", "steps=abc", "--dry-run"});
  EXPECT_NE(bad_set.exit_code, 0);
  EXPECT_TRUE(contains(bad_set.err, "steps")) << bad_set.err;

  const RunResult no_checkpoint = run_tool("ssm-generate", {"--checkpoint", "/nonexistent/ckpt", "--prompt", "x"});
  EXPECT_EQ(no_checkpoint.exit_code, 1);
  EXPECT_TRUE(contains(no_checkpoint.err, "/nonexistent/ckpt")) << no_checkpoint.err;
}

TEST(Cli, ListAndDryRunShowTheExperiments) {
  const RunResult list = run_tool("ssm-train", {"--list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  for (const char* name : {"tinystories-mamba3", "tinystories-mamba3-debug", "tinystories-mamba2", "spo-mamba3"})
    EXPECT_TRUE(contains(list.out, name)) << name;

  const RunResult dry = run_tool("ssm-train", {"--experiment", "tinystories-mamba3", "--set", "steps=5", "--",
                                               "--d-state", "32", "--threads", "1", "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_TRUE(contains(dry.out, "steps = 5")) << dry.out;
  EXPECT_TRUE(contains(dry.out, "d_state = 32")) << dry.out;
  EXPECT_TRUE(contains(dry.out, "threads = 1")) << dry.out;
}

TEST(Cli, PretrainThenFinetuneThenInferAndGenerate) {
  ScopedTempDir dir;
  ScopedEnv cache("SSM_CACHE", dir / "cache");
  const RunResult pretrain = run_tool("ssm-train", {"--experiment", "tinystories-mamba3-debug", "--output-dir", dir / "pre"});
  ASSERT_EQ(pretrain.exit_code, 0) << pretrain.out << pretrain.err;
  EXPECT_TRUE(contains(pretrain.out, "eval step")) << pretrain.out;
  EXPECT_TRUE(contains(pretrain.out, "sample: ")) << pretrain.out;
  EXPECT_TRUE(contains(pretrain.out, "done: ")) << pretrain.out;

  const RunResult finetune = run_tool("ssm-train", {"--experiment", "spo-mamba3-debug", "--output-dir", dir / "spo",
                                                    "--init-checkpoint", dir / "pre/best"});
  ASSERT_EQ(finetune.exit_code, 0) << finetune.out << finetune.err;
  EXPECT_TRUE(contains(finetune.out, "exact_match")) << finetune.out;

  const RunResult infer = run_tool("ssm-infer", {"--checkpoint", dir / "spo/best", "--text",
                                                 "Alice reads a book and Bob drives a car."});
  ASSERT_EQ(infer.exit_code, 0) << infer.err;
  EXPECT_TRUE(contains(infer.out, "raw: ")) << infer.out;
  EXPECT_TRUE(contains(infer.out, "triples: [")) << infer.out;

  const RunResult generate = run_tool("ssm-generate", {"--checkpoint", dir / "pre/best", "--prompt", "Once upon",
                                                       "--max-new-tokens", "24", "--seed", "3"});
  ASSERT_EQ(generate.exit_code, 0) << generate.err;
  EXPECT_EQ(generate.out.rfind("Once upon", 0), 0u) << generate.out;
  EXPECT_TRUE(contains(generate.err, "tokens/s")) << generate.err;
  // Same seed, same text.
  EXPECT_EQ(run_tool("ssm-generate", {"--checkpoint", dir / "pre/best", "--prompt", "Once upon", "--max-new-tokens",
                                      "24", "--seed", "3"}).out,
            generate.out);
}

TEST(Cli, CtrlCDuringTrainingSavesALoadableCheckpoint) {
  ScopedTempDir dir;
  ScopedEnv cache("SSM_CACHE", dir / "cache");
  const std::string out = dir / "run";
  const pid_t pid = spawn_tool("ssm-train", {"--experiment", "tinystories-mamba3-debug", "--output-dir", out, "--set",
                                             "steps=100000", "--set", "log_interval=1"},
                               dir);
  ASSERT_GT(pid, 0) << "ssm-train did not start: no process to interrupt";
  // Wait until training is under way (a training record in metrics.jsonl), then press Ctrl-C.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!contains(read_file(out + "/metrics.jsonl"), "\"loss\"") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGINT);
  const RunResult r = finish(pid, dir);
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "interrupted at step")) << r.out;
  const ssm::tasks::LoadedModel loaded = ssm::tasks::load_checkpoint(out + "/last");
  EXPECT_GT(loaded.info.step, 0);

  // And it resumes from there.
  const RunResult resumed = run_tool("ssm-train", {"--experiment", "tinystories-mamba3-debug", "--output-dir", out,
                                                   "--set", "steps=" + std::to_string(loaded.info.step + 2), "--resume"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "resuming at step " + std::to_string(loaded.info.step))) << resumed.out;
}
