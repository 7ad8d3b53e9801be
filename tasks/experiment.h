// tasks/experiment.h — one fully resolved experiment: what to run, on which model, data and machine.
//
// `experiments.toml` (tasks/experiments_file.h) names models, data sources, targets and experiments
// that refer to them; resolving an experiment (plus any `--set key=value` overrides and low-level
// flags) gives one ExperimentSpec with every reference followed and every default filled in. The task
// drivers (tasks/pretrain.h, tasks/finetune.h, ...) read nothing else, so a run is reproducible from
// its resolved spec alone (`ssm-train --dry-run` prints it; each run saves it as resolved.toml).
#pragma once
#include <cstdint>
#include <string>

#include "ssm/config.h"

namespace ssm::tasks {

// [models.NAME]: the architecture, once. The vocabulary size is not here: it is the tokenizer's.
struct ModelSpec {
  std::string name;
  std::string architecture = "mamba3";  // "mamba2" | "mamba3"
  std::string tokenizer = "byte";       // "byte" | "char" (a char vocabulary is built from the training text)
  int64_t char_vocab_limit = 0;         // char tokenizer only: most ids kept (0 = no limit)
  int64_t d_model = 160;
  int64_t n_layer = 5;
  int64_t d_intermediate = 0;  // > 0 adds a GatedMLP after every mixer
  int64_t d_state = 16;
  int64_t expand = 2;
  int64_t headdim = 16;
  int64_t ngroups = 1;
  int64_t chunk_size = 32;
  int64_t pad_vocab_size_multiple = 8;
  int64_t d_conv = 4;           // mamba2 only
  double rope_fraction = 0.5;   // mamba3 only: 0.5 or 1.0
  int64_t mimo_rank = 2;        // mamba3 only: 1 = SISO, R > 1 = MIMO of rank R
  bool outproj_norm = false;    // mamba3 only
};

// The model's LMConfig (official schema) for a tokenizer of `vocab_size` ids; validated.
LMConfig make_lm_config(const ModelSpec& model, int64_t vocab_size);

// [data.NAME]: where the text comes from.
//   kind "tinystories": roneneldan/TinyStories from the Hugging Face Hub (HF_ENDPOINT honoured), cached
//                       under $SSM_CACHE; or a local folder holding TinyStories-{train,valid}.txt (or the
//                       -head.txt samples) when local_dir is set.
//   kind "text":        any UTF-8 text file; validation is valid_path, or the last valid_fraction of path.
//   kind "spo":         synthetic subject–predicate–object sentences (tasks/spo.h), seeded.
struct DataSpec {
  std::string name;
  std::string kind = "tinystories";
  // tinystories
  std::string local_dir;        // "" = download into the cache
  int64_t max_train_bytes = 0;  // 0 = the whole split; else only its first N bytes are tokenised
  int64_t max_valid_bytes = 0;
  // text
  std::string path;
  std::string valid_path;        // "" = hold out the end of `path`
  double valid_fraction = 0.05;
  // spo
  int64_t min_facts = 1;
  int64_t max_facts = 3;
  int64_t valid_examples = 256;  // held-out sentences for validation loss and exact match
};

// [targets.NAME]: where it runs. Only kind "local" exists now.
struct TargetSpec {
  std::string name = "local";
  std::string kind = "local";
  std::string device = "auto";  // "cpu" | "cuda" | "auto" (cuda when this build has it and a GPU is present)
  int64_t threads = 0;          // CPU threads (0 = all cores)
  std::string precision = "fp32";  // "fp32" | "bf16": training's matmuls through bfloat16 (autograd/autocast.h)
  bool cuda_graph = true;  // on a GPU, replay the training step from a CUDA graph (nn/gradient_step.h)
};

// The task's own arguments: [experiments.NAME] keys besides task/model/data/target/description.
struct TaskArgs {
  // training (pretrain, finetune)
  int64_t steps = 1000;
  int64_t batch = 16;
  int64_t seq_len = 256;
  double lr = 2e-3;
  std::string schedule = "cosine";  // "cosine" (warm-up + cosine), "wsd" (warm-up, stable, decay), "constant"
  int64_t warmup_steps = 50;
  int64_t decay_steps = 0;          // wsd only: length of the final decay (0 = 20% of steps)
  double min_lr_ratio = 0.1;        // the schedule's floor, as a fraction of lr
  double weight_decay = 0.1;        // on matrices only (nn::decay_groups)
  double beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;           // 0 = off
  int64_t eval_interval = 100;      // steps between validations (and samples); 0 = only at the end
  int64_t eval_windows = 64;        // validation windows (pretrain) — evenly spaced over the valid split
  int64_t checkpoint_interval = 0;  // steps between `last` checkpoints besides evaluations (0 = at evaluations)
  int64_t log_interval = 10;        // steps between progress-line/metrics updates
  int64_t seed = 0;
  std::string output_dir;           // "" = runs/<experiment name>
  std::string init_from;            // finetune: another experiment whose best checkpoint starts this one
  std::string init_checkpoint;      // finetune: a checkpoint folder (wins over init_from)
  // generation (generate, infer, and the samples printed at evaluations)
  std::string prompt = "Once upon a time";
  int64_t max_new_tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 0;    // 0 = off
  double top_p = 1.0;   // 1 = off
  int64_t sample_tokens = 120;  // length of the sample printed at each evaluation
};

struct ExperimentSpec {
  std::string name;
  std::string description;
  std::string task = "pretrain";  // "pretrain" | "finetune" | "infer" | "generate"
  ModelSpec model;
  DataSpec data;
  TargetSpec target;
  TaskArgs args;

  // Where checkpoints and metrics go: args.output_dir, or runs/<name>.
  std::string output_dir() const { return args.output_dir.empty() ? "runs/" + name : args.output_dir; }
};

}  // namespace ssm::tasks
