// experiments.toml: the shipped file, strict parsing (every error names file:line:column and the key),
// defaults, references, overrides, resolve_adhoc, the to_toml round trip, list().
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <unistd.h>

#include "ssm/lm.h"
#include "tasks/experiments_file.h"
#include "tasks/session.h"
#include "tensor/backend.h"
#include "tensor/error.h"

using namespace ssm;
using namespace ssm::tasks;
namespace fs = std::filesystem;

namespace {

// The repository root (CMakeLists.txt defines it for the tests).
fs::path repo_root() { return SSM_SOURCE_DIR; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Parse `text` as "x.toml" in the folder /base/dir.
ExperimentsFile parse(const std::string& text) { return ExperimentsFile::parse(text, "x.toml", "/base/dir"); }
std::string parse_error(const std::string& text) {
  return error_of([&] { parse(text); });
}

// A small valid file in three parts, so tests can insert a line into any table:
//   1 [models.m]  2 architecture  3 [data.d]  4 kind  5 [experiments.e]  6 task  7 model  8 data
const std::string kModel = "[models.m]\narchitecture = \"mamba3\"\n";
const std::string kData = "[data.d]\nkind = \"spo\"\n";
const std::string kExperiment = "[experiments.e]\ntask = \"pretrain\"\nmodel = \"m\"\ndata = \"d\"\n";
const std::string kMinimal = kModel + kData + kExperiment;

// The error of kMinimal with `line` added as line 3 (in [models.m]), 5 (in [data.d]) or 9 (in [experiments.e]).
std::string error_with_model_line(const std::string& line) {
  return parse_error(kModel + line + "\n" + kData + kExperiment);
}
std::string error_with_data_line(const std::string& line) {
  return parse_error(kModel + kData + line + "\n" + kExperiment);
}
std::string error_with_experiment_line(const std::string& line) { return parse_error(kMinimal + line + "\n"); }

const std::string kModelKeys =
    "architecture, tokenizer, char_vocab_limit, d_model, n_layer, d_intermediate, d_state, expand, headdim, "
    "ngroups, chunk_size, pad_vocab_size_multiple, d_conv, rope_fraction, mimo_rank, outproj_norm";
const std::string kExperimentKeys =
    "description, task, model, data, target, steps, batch, seq_len, lr, schedule, warmup_steps, decay_steps, "
    "min_lr_ratio, weight_decay, beta1, beta2, grad_clip, eval_interval, eval_windows, checkpoint_interval, "
    "log_interval, seed, output_dir, init_from, init_checkpoint, prompt, max_new_tokens, temperature, top_k, "
    "top_p, sample_tokens";

// Every field of two specs, one by one.
void expect_same(const ExperimentSpec& a, const ExperimentSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.task, b.task);
  const ModelSpec &ma = a.model, &mb = b.model;
  EXPECT_EQ(ma.name, mb.name);
  EXPECT_EQ(ma.architecture, mb.architecture);
  EXPECT_EQ(ma.tokenizer, mb.tokenizer);
  EXPECT_EQ(ma.char_vocab_limit, mb.char_vocab_limit);
  EXPECT_EQ(ma.d_model, mb.d_model);
  EXPECT_EQ(ma.n_layer, mb.n_layer);
  EXPECT_EQ(ma.d_intermediate, mb.d_intermediate);
  EXPECT_EQ(ma.d_state, mb.d_state);
  EXPECT_EQ(ma.expand, mb.expand);
  EXPECT_EQ(ma.headdim, mb.headdim);
  EXPECT_EQ(ma.ngroups, mb.ngroups);
  EXPECT_EQ(ma.chunk_size, mb.chunk_size);
  EXPECT_EQ(ma.pad_vocab_size_multiple, mb.pad_vocab_size_multiple);
  EXPECT_EQ(ma.d_conv, mb.d_conv);
  EXPECT_EQ(ma.rope_fraction, mb.rope_fraction);
  EXPECT_EQ(ma.mimo_rank, mb.mimo_rank);
  EXPECT_EQ(ma.outproj_norm, mb.outproj_norm);
  const DataSpec &da = a.data, &db = b.data;
  EXPECT_EQ(da.name, db.name);
  EXPECT_EQ(da.kind, db.kind);
  EXPECT_EQ(da.local_dir, db.local_dir);
  EXPECT_EQ(da.max_train_bytes, db.max_train_bytes);
  EXPECT_EQ(da.max_valid_bytes, db.max_valid_bytes);
  EXPECT_EQ(da.path, db.path);
  EXPECT_EQ(da.valid_path, db.valid_path);
  EXPECT_EQ(da.valid_fraction, db.valid_fraction);
  EXPECT_EQ(da.min_facts, db.min_facts);
  EXPECT_EQ(da.max_facts, db.max_facts);
  EXPECT_EQ(da.valid_examples, db.valid_examples);
  EXPECT_EQ(a.target.name, b.target.name);
  EXPECT_EQ(a.target.kind, b.target.kind);
  EXPECT_EQ(a.target.device, b.target.device);
  EXPECT_EQ(a.target.threads, b.target.threads);
  EXPECT_EQ(a.target.precision, b.target.precision);
  const TaskArgs &ta = a.args, &tb = b.args;
  EXPECT_EQ(ta.steps, tb.steps);
  EXPECT_EQ(ta.batch, tb.batch);
  EXPECT_EQ(ta.seq_len, tb.seq_len);
  EXPECT_EQ(ta.lr, tb.lr);
  EXPECT_EQ(ta.schedule, tb.schedule);
  EXPECT_EQ(ta.warmup_steps, tb.warmup_steps);
  EXPECT_EQ(ta.decay_steps, tb.decay_steps);
  EXPECT_EQ(ta.min_lr_ratio, tb.min_lr_ratio);
  EXPECT_EQ(ta.weight_decay, tb.weight_decay);
  EXPECT_EQ(ta.beta1, tb.beta1);
  EXPECT_EQ(ta.beta2, tb.beta2);
  EXPECT_EQ(ta.grad_clip, tb.grad_clip);
  EXPECT_EQ(ta.eval_interval, tb.eval_interval);
  EXPECT_EQ(ta.eval_windows, tb.eval_windows);
  EXPECT_EQ(ta.checkpoint_interval, tb.checkpoint_interval);
  EXPECT_EQ(ta.log_interval, tb.log_interval);
  EXPECT_EQ(ta.seed, tb.seed);
  EXPECT_EQ(ta.output_dir, tb.output_dir);
  EXPECT_EQ(ta.init_from, tb.init_from);
  EXPECT_EQ(ta.init_checkpoint, tb.init_checkpoint);
  EXPECT_EQ(ta.prompt, tb.prompt);
  EXPECT_EQ(ta.max_new_tokens, tb.max_new_tokens);
  EXPECT_EQ(ta.temperature, tb.temperature);
  EXPECT_EQ(ta.top_k, tb.top_k);
  EXPECT_EQ(ta.top_p, tb.top_p);
  EXPECT_EQ(ta.sample_tokens, tb.sample_tokens);
}

// While it lives, the working directory is a fresh empty folder (removed afterwards).
class InTempDir {
 public:
  explicit InTempDir(const std::string& name)
      : previous_(fs::current_path()),
        dir_(fs::temp_directory_path() / ("ssm_experiments_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::current_path(dir_);
  }
  ~InTempDir() {
    fs::current_path(previous_);
    fs::remove_all(dir_);
  }

 private:
  fs::path previous_, dir_;
};

ExperimentsFile shipped() { return ExperimentsFile::load((repo_root() / "experiments.toml").string()); }

}  // namespace

TEST(Experiments, ShippedFileLoadsAndEveryExperimentResolves) {
  const ExperimentsFile file = shipped();
  const std::vector<std::string> want = {"tinystories-mamba3", "tinystories-mamba3-debug", "tinystories-mamba3-sample",
                                         "tinystories-mamba2", "spo-mamba3", "spo-mamba3-debug", "text-mamba3",
                                         "generate-mamba3"};
  EXPECT_EQ(file.experiment_names(), want);
  for (const std::string& name : file.experiment_names()) {
    SCOPED_TRACE(name);
    const ExperimentSpec spec = file.resolve(name);
    EXPECT_EQ(spec.name, name);
    EXPECT_FALSE(spec.description.empty());
    EXPECT_EQ(spec.description.find('\n'), std::string::npos);
    EXPECT_NO_THROW(make_lm_config(spec.model, 258));
  }
  EXPECT_EQ(file.target_names(), (std::vector<std::string>{"local", "cpu-1"}));
}

// The ~1M default of the spec (§5): its sizes, its LMConfig, and 928,680 parameters.
TEST(Experiments, TinystoriesMamba3IsTheOneMillionModel) {
  const ExperimentSpec spec = shipped().resolve("tinystories-mamba3");
  EXPECT_EQ(spec.task, "pretrain");
  const ModelSpec& m = spec.model;
  EXPECT_EQ(m.name, "mamba3-1m");
  EXPECT_EQ(m.architecture, "mamba3");
  EXPECT_EQ(m.tokenizer, "byte");
  EXPECT_EQ(m.d_model, 160);
  EXPECT_EQ(m.n_layer, 5);
  EXPECT_EQ(m.headdim, 16);
  EXPECT_EQ(m.d_state, 16);
  EXPECT_EQ(m.expand, 2);
  EXPECT_EQ(m.mimo_rank, 2);
  EXPECT_EQ(m.ngroups, 1);
  EXPECT_EQ(m.rope_fraction, 0.5);
  EXPECT_EQ(m.chunk_size, 32);
  EXPECT_EQ(spec.data.name, "tinystories");
  EXPECT_EQ(spec.data.kind, "tinystories");
  EXPECT_EQ(spec.data.max_train_bytes, 200'000'000);
  EXPECT_EQ(spec.data.max_valid_bytes, 5'000'000);
  EXPECT_EQ(spec.target.name, "local");
  EXPECT_EQ(spec.target.device, "auto");
  EXPECT_EQ(spec.target.threads, 0);
  EXPECT_EQ(spec.args.steps, 1000);
  EXPECT_EQ(spec.args.batch, 16);
  EXPECT_EQ(spec.args.seq_len, 256);
  EXPECT_EQ(spec.args.lr, 2e-3);
  EXPECT_EQ(spec.args.warmup_steps, 50);
  EXPECT_EQ(spec.args.schedule, "cosine");
  EXPECT_EQ(spec.args.min_lr_ratio, 0.1);
  EXPECT_EQ(spec.args.eval_interval, 100);

  const LMConfig cfg = make_lm_config(m, 256);
  EXPECT_EQ(cfg.d_model, 160);
  EXPECT_EQ(cfg.n_layer, 5);
  EXPECT_EQ(cfg.vocab_size, 256);
  EXPECT_EQ(cfg.d_intermediate, 0);
  EXPECT_EQ(cfg.mixer.kind, MixerKind::Mamba3);
  EXPECT_EQ(cfg.mixer.d_state, 16);
  EXPECT_EQ(cfg.mixer.headdim, 16);
  EXPECT_EQ(cfg.mixer.expand, 2);
  EXPECT_EQ(cfg.mixer.ngroups, 1);
  EXPECT_EQ(cfg.mixer.chunk_size, 32);
  EXPECT_TRUE(cfg.mixer.is_mimo);
  EXPECT_EQ(cfg.mixer.mimo_rank, 2);
  EXPECT_EQ(cfg.mixer.rope_fraction, 0.5);
  Generator gen(1);
  EXPECT_EQ(MambaLM(cfg, gen).num_parameters(), 928680);
  // spec §5 again: the Mamba-2 model of the same sizes has 862,220.
  const ExperimentSpec mamba2 = shipped().resolve("tinystories-mamba2");
  EXPECT_EQ(mamba2.model.architecture, "mamba2");
  EXPECT_EQ(MambaLM(make_lm_config(mamba2.model, 256), gen).num_parameters(), 862220);
}

TEST(Experiments, ShippedRecipes) {
  const ExperimentsFile file = shipped();
  const ExperimentSpec sample = file.resolve("tinystories-mamba3-sample");
  EXPECT_EQ(sample.model.name, "mamba3-1m");
  EXPECT_EQ(sample.data.kind, "text");
  // Relative to the file's folder, whatever the working directory.
  EXPECT_EQ(sample.data.path,
            (repo_root() / "../shared/data/tinystories/TinyStories-train-head.txt").lexically_normal().string());
  EXPECT_EQ(sample.data.valid_path,
            (repo_root() / "../shared/data/tinystories/TinyStories-valid-head.txt").lexically_normal().string());
  EXPECT_EQ(sample.args.steps, 1000);
  EXPECT_EQ(sample.args.batch * sample.args.seq_len, 16 * 256);
  EXPECT_EQ(sample.args.beta1, 0.9);
  EXPECT_EQ(sample.args.beta2, 0.95);
  EXPECT_EQ(sample.args.weight_decay, 0.1);
  EXPECT_EQ(sample.args.grad_clip, 1.0);
  EXPECT_EQ(sample.args.eval_interval, 50);
  EXPECT_EQ(sample.args.eval_windows, 64);

  const ExperimentSpec spo = file.resolve("spo-mamba3");
  EXPECT_EQ(spo.task, "finetune");
  EXPECT_EQ(spo.data.kind, "spo");
  EXPECT_EQ(spo.args.init_from, "tinystories-mamba3");
  EXPECT_EQ(spo.args.steps, 600);
  EXPECT_EQ(spo.args.seq_len, 128);
  EXPECT_EQ(spo.args.lr, 1e-3);
  EXPECT_EQ(spo.args.warmup_steps, 20);

  const ExperimentSpec debug = file.resolve("tinystories-mamba3-debug");
  EXPECT_EQ(debug.model.d_model, 64);
  EXPECT_EQ(debug.model.n_layer, 2);
  EXPECT_EQ(debug.args.steps, 30);
  EXPECT_EQ(file.resolve("spo-mamba3-debug").args.init_from, "tinystories-mamba3-debug");
  EXPECT_EQ(file.resolve("text-mamba3").data.path, (repo_root() / "README.md").string());

  const ExperimentSpec generate = file.resolve("generate-mamba3");
  EXPECT_EQ(generate.task, "generate");
  EXPECT_EQ(generate.data.name, "");
  EXPECT_EQ(generate.args.init_from, "tinystories-mamba3");
  EXPECT_EQ(generate.args.prompt, "Once upon a time");
}

TEST(Experiments, TypeErrorsNameFileLineColumnAndKey) {
  EXPECT_EQ(error_with_model_line("d_state = \"16\""),
            "x.toml:3:11: models.m.d_state: expected an integer, got a string (\"16\")");
  EXPECT_EQ(error_with_model_line("d_state = 16.0"),
            "x.toml:3:11: models.m.d_state: expected an integer, got a float (16.0)");
  EXPECT_EQ(error_with_model_line("d_state = true"),
            "x.toml:3:11: models.m.d_state: expected an integer, got a boolean (true)");
  EXPECT_EQ(error_with_model_line("rope_fraction = \"half\""),
            "x.toml:3:17: models.m.rope_fraction: expected a finite number, got a string (\"half\")");
  EXPECT_EQ(error_with_model_line("rope_fraction = nan"),
            "x.toml:3:17: models.m.rope_fraction: expected a finite number, got a float (nan)");
  EXPECT_EQ(error_with_model_line("tokenizer = 3"),
            "x.toml:3:13: models.m.tokenizer: expected a string, got an integer (3)");
  EXPECT_EQ(error_with_model_line("outproj_norm = 1"),
            "x.toml:3:16: models.m.outproj_norm: expected a boolean, got an integer (1)");
  EXPECT_EQ(error_with_model_line("d_model = [160]"),
            "x.toml:3:11: models.m.d_model: expected an integer, got an array");
  // An integer is accepted where a float is expected, exactly.
  EXPECT_EQ(parse(kMinimal + "lr = 1\n").resolve("e").args.lr, 1.0);
}

TEST(Experiments, ValueErrorsNameFileLineColumnAndKey) {
  EXPECT_EQ(error_with_experiment_line("steps = 0"), "x.toml:9:9: experiments.e.steps: must be > 0, got 0");
  EXPECT_EQ(error_with_experiment_line("lr = -0.5"), "x.toml:9:6: experiments.e.lr: must be > 0, got -0.5");
  EXPECT_EQ(error_with_experiment_line("top_p = 1.5"), "x.toml:9:9: experiments.e.top_p: must be in (0, 1], got 1.5");
  EXPECT_EQ(error_with_experiment_line("top_p = 0"), "x.toml:9:9: experiments.e.top_p: must be in (0, 1], got 0.0");
  EXPECT_EQ(error_with_experiment_line("temperature = -0.1"),
            "x.toml:9:15: experiments.e.temperature: must be >= 0, got -0.1");
  EXPECT_EQ(error_with_experiment_line("schedule = \"linear\""),
            "x.toml:9:12: experiments.e.schedule: must be one of \"cosine\", \"wsd\", \"constant\", got \"linear\"");
  EXPECT_EQ(error_with_experiment_line("description = \"two\\nlines\""),
            "x.toml:9:15: experiments.e.description: must be a single line, got \"two\\nlines\"");
  EXPECT_EQ(error_with_data_line("valid_fraction = 1"),
            "x.toml:5:18: data.d.valid_fraction: must be in [0, 1), got 1.0");
  EXPECT_EQ(error_with_data_line("max_facts = 0"), "x.toml:5:13: data.d.max_facts: must be >= 1, got 0");
  EXPECT_EQ(error_with_data_line("min_facts = 4"), "x.toml:3:1: data.d: min_facts (4) must be <= max_facts (3)");
  EXPECT_EQ(parse_error("[data.t]\nkind = \"csv\"\n"),
            "x.toml:2:8: data.t.kind: must be one of \"tinystories\", \"text\", \"spo\", got \"csv\"");
  EXPECT_EQ(parse_error("[data.t]\nkind = \"text\"\n"),
            "x.toml:1:1: data.t: kind \"text\" needs path (the text file to read)");
  EXPECT_EQ(parse_error("[models.m]\narchitecture = \"mamba4\"\n"),
            "x.toml:2:16: models.m.architecture: must be one of \"mamba2\", \"mamba3\", got \"mamba4\"");
  EXPECT_EQ(parse_error("[models.m]\nrope_fraction = 0.25\n"),
            "x.toml:2:17: models.m.rope_fraction: must be one of 0.5, 1.0, got 0.25");
  EXPECT_EQ(parse_error("[models.m]\nd_model = 0\n"), "x.toml:2:11: models.m.d_model: must be > 0, got 0");
  EXPECT_EQ(parse_error("[models.m]\nmimo_rank = 0\n"), "x.toml:2:13: models.m.mimo_rank: must be >= 1, got 0");
  EXPECT_EQ(parse_error("[targets.t]\ndevice = \"gpu\"\n"),
            "x.toml:2:10: targets.t.device: must be one of \"cpu\", \"cuda\", \"auto\", got \"gpu\"");
  EXPECT_EQ(parse_error("[targets.t]\nthreads = -1\n"), "x.toml:2:11: targets.t.threads: must be >= 0, got -1");
  EXPECT_EQ(parse_error("[targets.t]\nprecision = \"fp16\"\n"),
            "x.toml:2:13: targets.t.precision: must be one of \"fp32\", \"bf16\", got \"fp16\"");
  // Sizes that do not fit together: reported at the model's table, with LMConfig's reason.
  const std::string misfit = parse_error("[models.m]\nheaddim = 7\n");
  EXPECT_EQ(misfit.rfind("x.toml:1:1: models.m: ", 0), 0u) << misfit;
  EXPECT_NE(misfit.find("headdim 7 does not divide"), std::string::npos) << misfit;
}

TEST(Experiments, UnknownTablesAndKeysSuggestTheClosest) {
  EXPECT_EQ(parse_error("[modles.m]\n"),
            "x.toml:1:2: unknown table \"modles\" (did you mean \"models\"?); valid: defaults, models, data, targets, "
            "experiments");
  EXPECT_EQ(parse_error("[models.m]\ndstate = 16\n"),
            "x.toml:2:1: models.m: unknown key \"dstate\" (did you mean \"d_state\"?); valid: " + kModelKeys);
  EXPECT_EQ(parse_error("[models.m]\ncolour = 1\n"),
            "x.toml:2:1: models.m: unknown key \"colour\"; valid: " + kModelKeys);
  EXPECT_EQ(error_with_experiment_line("stpes = 3"),
            "x.toml:9:1: experiments.e: unknown key \"stpes\" (did you mean \"steps\"?); valid: " + kExperimentKeys);
  EXPECT_EQ(parse_error("[defaults.data]\n"),
            "x.toml:1:11: defaults: unknown table \"data\"; valid: model, experiment");
  EXPECT_EQ(parse_error("[defaults.model]\nd_modle = 3\n"),  // checked even with no model to apply it to
            "x.toml:2:1: defaults.model: unknown key \"d_modle\" (did you mean \"d_model\"?); valid: " + kModelKeys);
  EXPECT_EQ(parse_error("models = 3\n"), "x.toml:1:10: models: expected a table, got an integer (3)");
  EXPECT_EQ(parse_error("[models]\nm = 1\n"),
            "x.toml:2:5: models.m: expected a table ([models.m]), got an integer (1)");
  EXPECT_EQ(parse_error("[models.\"a b\"]\n"),
            "x.toml:1:9: models: name \"a b\" may only hold letters, digits, '-' and '_' (names become folders and "
            "keys)");
  EXPECT_EQ(parse_error("resolved = 1\n"), "x.toml:1:12: resolved: expected a boolean, got an integer (1)");
  // A mistake in a model no experiment uses is still reported.
  EXPECT_EQ(parse_error(kMinimal + "[models.unused]\nn_layer = \"5\"\n"),
            "x.toml:10:11: models.unused.n_layer: expected an integer, got a string (\"5\")");
}

TEST(Experiments, SyntaxErrorsAreToml) {
  const std::string junk = error_with_model_line("d_state = 16 17");
  EXPECT_EQ(junk.rfind("x.toml:3:14: ", 0), 0u) << junk;
  EXPECT_GT(junk.size(), std::string("x.toml:3:14: ").size());
  const std::string twice = error_with_model_line("architecture = \"mamba2\"");  // duplicate key
  EXPECT_EQ(twice.rfind("x.toml:3:", 0), 0u) << twice;
  EXPECT_NE(twice.find("architecture"), std::string::npos) << twice;
  const std::string table_twice = parse_error(kMinimal + "[models.m]\n");  // duplicate table, line 9
  EXPECT_EQ(table_twice.rfind("x.toml:9:", 0), 0u) << table_twice;
  EXPECT_NE(table_twice.find("models.m"), std::string::npos) << table_twice;
}

TEST(Experiments, DanglingReferencesAndMissingKeys) {
  const auto with_line = [](int line, const std::string& text) {  // kMinimal with line `line` replaced
    std::vector<std::string> lines;
    std::istringstream in(kMinimal);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    lines.at(line - 1) = text;
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return parse_error(out);
  };
  EXPECT_EQ(with_line(7, "model = \"n\""),
            "x.toml:7:9: experiments.e.model: no model named \"n\"; models (closest first): m");
  EXPECT_EQ(with_line(8, "data = \"dd\""),
            "x.toml:8:8: experiments.e.data: no data source named \"dd\"; data sources (closest first): d");
  EXPECT_EQ(with_line(8, "target = \"cpu-2\""),
            "x.toml:8:10: experiments.e.target: no target named \"cpu-2\"; targets (closest first): local");
  EXPECT_EQ(with_line(8, "data = \"d\"\ninit_from = \"f\""),
            "x.toml:9:13: experiments.e.init_from: no experiment named \"f\"; experiments (closest first): e");
  EXPECT_EQ(with_line(6, ""),
            "x.toml:5:1: experiments.e: missing key \"task\" (one of \"pretrain\", \"finetune\", \"infer\", "
            "\"generate\")");
  EXPECT_EQ(with_line(6, "task = \"train\""),
            "x.toml:6:8: experiments.e.task: must be one of \"pretrain\", \"finetune\", \"infer\", \"generate\", got "
            "\"train\"");
  EXPECT_EQ(with_line(7, ""), "x.toml:5:1: experiments.e: missing key \"model\" (the name of a [models.*] table)");
  EXPECT_EQ(with_line(8, ""),
            "x.toml:5:1: experiments.e: task \"pretrain\" needs data (the name of a [data.*] table)");
  const ExperimentsFile no_data = parse(kModel + "[experiments.e]\ntask = \"generate\"\nmodel = \"m\"\n");
  EXPECT_EQ(no_data.resolve("e").data.name, "");  // generation needs no data
  // A resolved document's init_from names an experiment of another file.
  EXPECT_EQ(parse("resolved = true\n" + kMinimal + "init_from = \"elsewhere\"\n").resolve("e").args.init_from,
            "elsewhere");
}

TEST(Experiments, UnknownExperimentListsTheClosestFirst) {
  const ExperimentsFile file = parse(kModel + "[experiments.pretrain-a]\ntask = \"generate\"\nmodel = \"m\"\n" +
                                     "[experiments.gen]\ntask = \"generate\"\nmodel = \"m\"\n" +
                                     "[experiments.pretrain-b]\ntask = \"generate\"\nmodel = \"m\"\n");
  EXPECT_EQ(error_of([&] { file.resolve("pretrain-c"); }),
            "x.toml: no experiment named \"pretrain-c\"; experiments (closest first): pretrain-a, pretrain-b, gen");
}

TEST(Experiments, DefaultsApplyFirstAndEntriesOverrideThem) {
  const ExperimentsFile file = parse(
      "[defaults.model]\nd_model = 64\nn_layer = 3\n"
      "[models.a]\narchitecture = \"mamba3\"\n"
      "[models.b]\nd_model = 96\n"
      "[defaults.experiment]\nsteps = 7\nlr = 0.5\n"
      "[experiments.x]\ntask = \"generate\"\nmodel = \"a\"\n"
      "[experiments.y]\ntask = \"generate\"\nmodel = \"b\"\nsteps = 9\n");
  const ExperimentSpec x = file.resolve("x"), y = file.resolve("y");
  EXPECT_EQ(x.model.d_model, 64);
  EXPECT_EQ(x.model.n_layer, 3);
  EXPECT_EQ(x.model.d_state, ModelSpec{}.d_state);  // neither defaults nor entry: the built-in default
  EXPECT_EQ(y.model.d_model, 96);
  EXPECT_EQ(y.model.n_layer, 3);
  EXPECT_EQ(x.args.steps, 7);
  EXPECT_EQ(x.args.lr, 0.5);
  EXPECT_EQ(y.args.steps, 9);
  EXPECT_EQ(y.args.lr, 0.5);
  EXPECT_EQ(x.args.batch, TaskArgs{}.batch);
}

TEST(Experiments, TargetsAndTheBuiltInLocal) {
  const ExperimentsFile file = parse(kMinimal + "[targets.cpu-1]\ndevice = \"cpu\"\nthreads = 1\n");
  EXPECT_EQ(file.target_names(), (std::vector<std::string>{"local", "cpu-1"}));
  const TargetSpec local = file.resolve("e").target;
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.device, TargetSpec{}.device);
  const TargetSpec cpu = file.resolve("e", {}, "cpu-1").target;
  EXPECT_EQ(cpu.name, "cpu-1");
  EXPECT_EQ(cpu.device, "cpu");
  EXPECT_EQ(cpu.threads, 1);
  EXPECT_EQ(error_of([&] { file.resolve("e", {}, "gpu"); }),
            "--target gpu: no target named \"gpu\"; targets (closest first): cpu-1, local");
  EXPECT_EQ(parse(kMinimal + "target = \"cpu-1\"\n[targets.cpu-1]\ndevice = \"cpu\"\n").resolve("e").target.device,
            "cpu");
  // A file's own [targets.local] replaces the built-in one.
  const ExperimentsFile own = parse(kMinimal + "[targets.local]\ndevice = \"cpu\"\n");
  EXPECT_EQ(own.target_names(), (std::vector<std::string>{"local"}));
  EXPECT_EQ(own.resolve("e").target.device, "cpu");
}

// m and b are models, e pretrains m on d, g generates with m and has no data.
ExperimentsFile override_file() {
  return parse(kModel + "[models.b]\narchitecture = \"mamba2\"\nd_model = 64\n" + kData + kExperiment +
               "[experiments.g]\ntask = \"generate\"\nmodel = \"m\"\n");
}

TEST(Experiments, OverridesOfEachKind) {
  const ExperimentsFile file = override_file();
  const ExperimentSpec e = file.resolve("e", {"steps=200", "lr=1e-3", "prompt=\"Hi\"", "top_k=5", "output_dir=runs/x"});
  EXPECT_EQ(e.args.steps, 200);
  EXPECT_EQ(e.args.lr, 1e-3);
  EXPECT_EQ(e.args.prompt, "Hi");
  EXPECT_EQ(e.args.top_k, 5);
  EXPECT_EQ(e.args.output_dir, "runs/x");  // not a data path: left as typed
  // Text that is not a TOML value, and any text for a string field, is a string.
  EXPECT_EQ(file.resolve("e", {"prompt=Hi there"}).args.prompt, "Hi there");
  EXPECT_EQ(file.resolve("e", {"prompt=42"}).args.prompt, "42");
  EXPECT_EQ(file.resolve("e", {"target.device=cpu"}).target.device, "cpu");
  EXPECT_EQ(file.resolve("e").target.precision, "fp32");
  EXPECT_EQ(file.resolve("e", {"target.precision=bf16"}).target.precision, "bf16");

  const ExperimentSpec copies = file.resolve("e", {"model.d_state=32", "data.max_train_bytes=5", "target.threads=3"});
  EXPECT_EQ(copies.model.name, "m");
  EXPECT_EQ(copies.model.d_state, 32);
  EXPECT_EQ(copies.data.max_train_bytes, 5);
  EXPECT_EQ(copies.target.threads, 3);
  EXPECT_EQ(file.resolve("e").model.d_state, 16);  // the file's entries are untouched

  // Re-pointing a reference replaces the copy; overrides apply in order.
  const ExperimentSpec repointed = file.resolve("e", {"model=b"});
  EXPECT_EQ(repointed.model.name, "b");
  EXPECT_EQ(repointed.model.architecture, "mamba2");
  EXPECT_EQ(repointed.model.d_model, 64);
  EXPECT_EQ(file.resolve("e", {"model.d_model=96", "model=b"}).model.d_model, 64);
  EXPECT_EQ(file.resolve("e", {"model=b", "model.d_model=96"}).model.d_model, 96);
  EXPECT_EQ(file.resolve("g", {"data=d", "task=finetune", "description=tuned"}).data.kind, "spo");
  EXPECT_EQ(file.resolve("g", {"task=pretrain", "data=d"}).task, "pretrain");  // checked after all of them
  EXPECT_EQ(file.resolve("e", {"task=generate", "data="}).data.name, "");
  EXPECT_EQ(file.resolve("e", {"init_from=g"}).args.init_from, "g");
  // Cross-field rules hold after all overrides, in either order.
  EXPECT_EQ(file.resolve("e", {"data.min_facts=5", "data.max_facts=6"}).data.min_facts, 5);
}

TEST(Experiments, OverrideErrorsNameTheOverride) {
  const ExperimentsFile file = override_file();
  const auto error = [&](std::vector<std::string> overrides, const std::string& name = "e") {
    return error_of([&] { file.resolve(name, overrides); });
  };
  EXPECT_EQ(error({"steps=abc"}), "--set steps=abc: steps: expected an integer, got a string (\"abc\")");
  EXPECT_EQ(error({"steps=1.5"}), "--set steps=1.5: steps: expected an integer, got a float (1.5)");
  EXPECT_EQ(error({"steps=0"}), "--set steps=0: steps: must be > 0, got 0");
  EXPECT_EQ(error({"model.d_state=big"}),
            "--set model.d_state=big: model.d_state: expected an integer, got a string (\"big\")");
  EXPECT_EQ(error({"steps"}), "--set steps: expected key=value");
  EXPECT_EQ(error({"model.dstate=8"}),
            "--set model.dstate=8: model: unknown key \"dstate\" (did you mean \"d_state\"?); valid: " + kModelKeys);
  const std::string typo = error({"stpes=3"});
  EXPECT_EQ(typo.rfind("--set stpes=3: unknown key \"stpes\" (did you mean \"steps\"?); valid: " + kExperimentKeys +
                           ", model.architecture, model.tokenizer,",
                       0),
            0u)
      << typo;
  EXPECT_NE(typo.find(", data.kind, "), std::string::npos) << typo;
  EXPECT_NE(typo.find(", target.threads"), std::string::npos) << typo;
  EXPECT_NE(error({"d_state=8"}).find("(did you mean \"model.d_state\"?)"), std::string::npos);
  EXPECT_EQ(error({"model=zzz"}), "--set model=zzz: model: no model named \"zzz\"; models (closest first): m, b");
  EXPECT_EQ(error({"init_from=nope"}),
            "--set init_from=nope: init_from: no experiment named \"nope\"; experiments (closest first): e, g");
  EXPECT_EQ(error({"data.path=x"}, "g"), "--set data.path=x: data: experiment \"g\" has no data; set data=NAME first");
  EXPECT_EQ(error({"task=pretrain"}, "g"),
            "with --set task=pretrain: task \"pretrain\" needs data (the name of a [data.*] table)");
  EXPECT_EQ(error({"data.min_facts=5"}), "with --set data.min_facts=5: data: min_facts (5) must be <= max_facts (3)");
  const std::string misfit = error({"steps=3", "model.headdim=7"});
  EXPECT_EQ(misfit.rfind("with --set steps=3 --set model.headdim=7: model: ", 0), 0u) << misfit;
  EXPECT_NE(misfit.find("headdim 7 does not divide"), std::string::npos) << misfit;
}

TEST(Experiments, RelativeDataPaths) {
  // In a file: from the file's folder (here the base_dir given to parse); absolute paths stay.
  const ExperimentSpec in_file =
      parse(kModel + "[data.d]\nkind = \"text\"\npath = \"../t.txt\"\nvalid_path = \"v.txt\"\nlocal_dir = \"/data\"\n" +
            kExperiment)
          .resolve("e");
  EXPECT_EQ(in_file.data.path, "/base/t.txt");
  EXPECT_EQ(in_file.data.valid_path, "/base/dir/v.txt");
  EXPECT_EQ(in_file.data.local_dir, "/data");
  // In an override: from the working directory.
  const ExperimentSpec overridden = parse(kMinimal).resolve("e", {"data.kind=text", "data.path=notes/a.txt"});
  EXPECT_EQ(overridden.data.path, (fs::current_path() / "notes" / "a.txt").string());
  // load(): from the folder of the file as named, whatever the working directory.
  InTempDir temp("paths");
  fs::create_directories("sub");
  std::ofstream("sub/x.toml") << kModel << "[data.d]\nkind = \"text\"\npath = \"t.txt\"\n" << kExperiment;
  const ExperimentsFile loaded = ExperimentsFile::load("sub/x.toml");
  EXPECT_EQ(loaded.source(), "sub/x.toml");
  EXPECT_EQ(loaded.resolve("e").data.path, (fs::current_path() / "sub" / "t.txt").string());
  std::ofstream("sub/bad.toml") << "[models.m]\nd_model = \"x\"\n";
  EXPECT_EQ(error_of([] { ExperimentsFile::load("sub/bad.toml"); }),
            "sub/bad.toml:2:11: models.m.d_model: expected an integer, got a string (\"x\")");
  EXPECT_EQ(error_of([] { ExperimentsFile::load("sub/none.toml"); }), "cannot open experiments file sub/none.toml");
}

TEST(Experiments, AdhocStartsFromTheBuiltInDefaults) {
  ExperimentSpec want;
  want.name = want.model.name = want.data.name = "adhoc";
  want.task = "generate";
  expect_same(resolve_adhoc("generate", {}), want);

  const ExperimentSpec custom =
      resolve_adhoc("pretrain", {"steps=5", "model.d_model=64", "data.kind=text", "data.path=README.md"});
  EXPECT_EQ(custom.task, "pretrain");
  EXPECT_EQ(custom.args.steps, 5);
  EXPECT_EQ(custom.model.d_model, 64);
  EXPECT_EQ(custom.data.path, (fs::current_path() / "README.md").string());
  EXPECT_EQ(error_of([] { resolve_adhoc("train", {}); }),
            "task must be one of \"pretrain\", \"finetune\", \"infer\", \"generate\", got \"train\"");
  EXPECT_EQ(error_of([] { resolve_adhoc("generate", {"model=mamba3-1m"}); }),
            "--set model=mamba3-1m: model: no model named \"mamba3-1m\" (there are none)");
}

// resolve → to_toml → parse → resolve gives the same spec.
void expect_round_trip(const ExperimentSpec& spec) {
  SCOPED_TRACE(spec.name);
  const std::string text = to_toml(spec);
  const ExperimentsFile back = ExperimentsFile::parse(text, "resolved.toml", "/elsewhere");
  EXPECT_EQ(back.experiment_names(), std::vector<std::string>{spec.name});
  expect_same(back.resolve(spec.name), spec);
}

TEST(Experiments, ToTomlReadsBackToTheSameSpec) {
  const ExperimentsFile file = shipped();
  for (const std::string& name : file.experiment_names()) expect_round_trip(file.resolve(name));
  expect_round_trip(resolve_adhoc("pretrain", {"data.kind=text", "data.path=README.md"}));
  // Every field away from its default, with values that are hard to spell: 0.1 and 1e-7 are not exact
  // binary fractions; the prompt has quotes, a backslash, a tab, a newline and non-ASCII text.
  const ExperimentSpec everything = file.resolve(
      "spo-mamba3",
      {"description=all \"fields\" changed", "model.architecture=mamba2", "model.tokenizer=char",
       "model.char_vocab_limit=300", "model.d_model=96", "model.n_layer=3", "model.d_intermediate=128",
       "model.d_state=32", "model.expand=3", "model.headdim=24", "model.ngroups=2", "model.chunk_size=64",
       "model.pad_vocab_size_multiple=16", "model.d_conv=3", "model.rope_fraction=1.0", "model.mimo_rank=4",
       "model.outproj_norm=true", "data.kind=text", "data.local_dir=dir", "data.max_train_bytes=1000",
       "data.max_valid_bytes=100", "data.path=a.txt", "data.valid_path=b.txt", "data.valid_fraction=0.25",
       "data.min_facts=2", "data.max_facts=5", "data.valid_examples=17", "target.device=cpu", "target.threads=3",
       "target.precision=bf16",
       "steps=7", "batch=3", "seq_len=33", "lr=0.1", "schedule=wsd", "warmup_steps=2", "decay_steps=4",
       "min_lr_ratio=0.3", "weight_decay=0.01", "beta1=0.8", "beta2=0.99", "grad_clip=0.5", "eval_interval=3",
       "eval_windows=5", "checkpoint_interval=6", "log_interval=2", "seed=42", "output_dir=out/x",
       "init_checkpoint=ckpt/best", "prompt=\"Say \\\"hi\\\" \\\\ \\t tab\\nnaïve ☃\"", "max_new_tokens=9",
       "temperature=1e-7", "top_k=40", "top_p=0.9", "sample_tokens=0"});
  EXPECT_EQ(everything.args.prompt, "Say \"hi\" \\ \t tab\nnaïve ☃");
  EXPECT_EQ(everything.args.init_from, "tinystories-mamba3");
  expect_round_trip(everything);
}

TEST(Experiments, ListShowsOneAlignedLinePerExperimentInFileOrder) {
  const ExperimentsFile file = parse(kModel + kData +
                                     "[experiments.long-name]\ndescription = \"First\"\ntask = \"pretrain\"\n"
                                     "model = \"m\"\ndata = \"d\"\n"
                                     "[experiments.g]\ntask = \"generate\"\nmodel = \"m\"\n");
  EXPECT_EQ(file.experiment_names(), (std::vector<std::string>{"long-name", "g"}));
  EXPECT_EQ(file.list(),
            "long-name  pretrain  m  d  First\n"
            "g          generate  m  -\n");
}

TEST(Experiments, DefaultPathPrefersTheWorkingDirectory) {
  InTempDir temp("default_path");
  // No experiments.toml here: the source tree's.
  EXPECT_TRUE(fs::equivalent(default_experiments_path(), fs::path(SSM_SOURCE_DIR) / "experiments.toml"));
  std::ofstream("experiments.toml") << kMinimal;
  EXPECT_EQ(default_experiments_path(), "experiments.toml");
}

// device "auto" takes the GPU exactly when there is one; "cuda" without one is an error saying what is missing.
TEST(Experiments, TargetDeviceChoice) {
  const bool gpu = device_available(Device::cuda());
  std::FILE* sink = std::tmpfile();
  TargetSpec target;
  target.name = "t";
  target.device = "auto";
  EXPECT_EQ(apply_target(target, sink), gpu ? Device::cuda() : Device::cpu());
  target.device = "cpu";
  EXPECT_EQ(apply_target(target, sink), Device::cpu());
  target.device = "cuda";
  if (gpu) {
    EXPECT_EQ(apply_target(target, sink), Device::cuda());
  } else {
    try {
      (void)apply_target(target, sink);
      ADD_FAILURE() << "device cuda without a GPU must be refused";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("target 't'"), std::string::npos) << message;
      EXPECT_NE(message.find("--device cpu"), std::string::npos) << message;
    }
  }
  std::fclose(sink);
}
