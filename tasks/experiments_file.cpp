// tasks/experiments_file.cpp — experiments.toml: strict parsing, resolution, overrides, printing.
//
// One table per struct (model_fields(), data_fields(), ...) says, for every key, which member it fills,
// which values it accepts and whether it is a path or the name of another entry. Reading the file,
// applying overrides, suggesting keys and writing to_toml all walk these tables, so a new field is one
// line there. The parsed TOML is kept: every value still knows its line and column, so an error found
// while resolving (a dangling reference, sizes that do not fit together) can point at it.
#include "tasks/experiments_file.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <type_traits>
#include <variant>

#include <toml++/toml.h>

#include "tensor/error.h"

namespace fs = std::filesystem;

namespace ssm::tasks {

namespace detail {
struct ExperimentsDocument {
  std::string source;  // the file's name in messages
  fs::path base_dir;   // relative data paths in the file resolve against this folder
  toml::table root;
  bool resolved = false;  // `resolved = true`: init_from names an experiment of another file
};
}  // namespace detail

namespace {

using Document = detail::ExperimentsDocument;

// ---- spelling values ----

using Value = std::variant<int64_t, double, bool, std::string>;

const std::vector<Value> kTasks = {"pretrain", "finetune", "infer", "generate"};

// The shortest text that reads back to exactly `x`, always spelled as a TOML float ("1.0", not "1").
std::string float_text(double x) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, x);
  std::string text(buf, result.ptr);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";  // "n": inf and nan
  return text;
}

// A TOML basic string: quoted, escaped.
std::string quote(const std::string& text) {
  std::ostringstream out;
  out << toml::toml_formatter{toml::value<std::string>(text), toml::format_flags::allow_unicode_strings};
  return out.str();
}

std::string value_text(const Value& value) {
  struct Spell {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return float_text(x); }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(const std::string& x) const { return quote(x); }
  };
  return std::visit(Spell{}, value);
}

// What a message says the user wrote: "a string ("16")", "a float (1.5)", "a table".
std::string describe(const toml::node& node) {
  if (const auto* s = node.as_string()) return "a string (" + value_text(s->get()) + ")";
  if (const auto* i = node.as_integer()) return "an integer (" + value_text(i->get()) + ")";
  if (const auto* f = node.as_floating_point()) return "a float (" + value_text(f->get()) + ")";
  if (const auto* b = node.as_boolean()) return "a boolean (" + value_text(b->get()) + ")";
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  return "a date or time";
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

// `"cpu", "cuda", "auto"`
std::string spelled(const std::vector<Value>& values) {
  std::vector<std::string> texts;
  for (const Value& v : values) texts.push_back(value_text(v));
  return join(texts, ", ");
}

// ---- suggestions ----

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// How far `typed` is from `candidate`, or from its last dotted part ("d_state" is close to "model.d_state").
size_t distance_to(std::string_view typed, std::string_view candidate) {
  const size_t dot = candidate.rfind('.');
  const size_t whole = edit_distance(typed, candidate);
  return dot == std::string_view::npos ? whole : std::min(whole, edit_distance(typed, candidate.substr(dot + 1)));
}

// " (did you mean "X"?)" when one candidate is a likely typo of `typed`, else "".
std::string did_you_mean(std::string_view typed, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 1 + typed.size() / 4;  // farther than this is a different word, not a typo
  for (const std::string& candidate : candidates)
    if (const size_t d = distance_to(typed, candidate); d <= best_distance && (!best || d < best_distance)) {
      best = &candidate;
      best_distance = d;
    }
  return best ? " (did you mean " + quote(*best) + "?)" : "";
}

// `unknown key "dstate" (did you mean "d_state"?); valid: architecture, ...`
std::string unknown(std::string_view what, const std::string& typed, const std::vector<std::string>& valid) {
  return std::string("unknown ") + std::string(what) + " " + quote(typed) + did_you_mean(typed, valid) +
         "; valid: " + join(valid, ", ");
}

// `no model named "x"; models (closest first): a, b`
std::string no_such(std::string_view what, std::string_view plural, const std::string& name,
                    std::vector<std::string> names) {
  const std::string head = "no " + std::string(what) + " named " + quote(name);
  if (names.empty()) return head + " (there are none)";
  std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return edit_distance(name, a) < edit_distance(name, b);
  });
  return head + "; " + std::string(plural) + " (closest first): " + join(names, ", ");
}

// ---- checks: what a field accepts beyond its type ----

// "" when `value` is acceptable, else what it must be ("must be > 0").
using Check = std::function<std::string(const Value&)>;

double number(const Value& value) {
  return std::holds_alternative<int64_t>(value) ? static_cast<double>(std::get<int64_t>(value))
                                                : std::get<double>(value);
}

std::string bound_text(double x) {
  return x == std::floor(x) ? std::to_string(static_cast<int64_t>(x)) : float_text(x);
}

Check at_least(double lo) {
  return [lo](const Value& v) { return number(v) >= lo ? "" : "must be >= " + bound_text(lo); };
}

Check positive() {
  return [](const Value& v) { return number(v) > 0 ? "" : std::string("must be > 0"); };
}

// The interval as written in mathematics: in_range('[', 0, 1, ')') is 0 <= x < 1.
Check in_range(char open, double lo, double hi, char close) {
  return [=](const Value& v) {
    const double x = number(v);
    const bool above = open == '(' ? x > lo : x >= lo;
    const bool below = close == ')' ? x < hi : x <= hi;
    return above && below ? "" : "must be in " + std::string(1, open) + bound_text(lo) + ", " + bound_text(hi) + close;
  };
}

Check one_of(std::vector<Value> allowed) {
  return [allowed](const Value& v) {
    return std::ranges::find(allowed, v) != allowed.end() ? "" : "must be one of " + spelled(allowed);
  };
}

Check one_line() {
  return [](const Value& v) {
    return std::get<std::string>(v).find('\n') == std::string::npos ? "" : std::string("must be a single line");
  };
}

// ---- the field tables ----

// What a string field holds beyond text: a path (made absolute) or the name of another entry (looked up).
enum class Role { text, path, model_name, data_name, target_name, experiment_name };

template <class Spec>
struct Field {
  std::string_view key;
  std::variant<int64_t Spec::*, double Spec::*, bool Spec::*, std::string Spec::*> member;
  Check check = {};
  Role role = Role::text;
};

template <class Spec>
using Fields = std::vector<Field<Spec>>;

// The keys of [experiments.NAME] besides the task arguments: what it is and which entries it uses.
struct ExperimentHead {
  std::string description;
  std::string task;
  std::string model;
  std::string data;  // "" = none
  std::string target = "local";
};

const Fields<ExperimentHead>& head_fields() {
  static const Fields<ExperimentHead> fields = {
      {"description", &ExperimentHead::description, one_line()},
      {"task", &ExperimentHead::task, one_of(kTasks)},
      {"model", &ExperimentHead::model, {}, Role::model_name},
      {"data", &ExperimentHead::data, {}, Role::data_name},
      {"target", &ExperimentHead::target, {}, Role::target_name},
  };
  return fields;
}

const Fields<ModelSpec>& model_fields() {
  static const Fields<ModelSpec> fields = {
      {"architecture", &ModelSpec::architecture, one_of({"mamba2", "mamba3"})},
      {"tokenizer", &ModelSpec::tokenizer, one_of({"byte", "char"})},
      {"char_vocab_limit", &ModelSpec::char_vocab_limit, at_least(0)},
      {"d_model", &ModelSpec::d_model, positive()},
      {"n_layer", &ModelSpec::n_layer, positive()},
      {"d_intermediate", &ModelSpec::d_intermediate, at_least(0)},
      {"d_state", &ModelSpec::d_state, positive()},
      {"expand", &ModelSpec::expand, positive()},
      {"headdim", &ModelSpec::headdim, positive()},
      {"ngroups", &ModelSpec::ngroups, positive()},
      {"chunk_size", &ModelSpec::chunk_size, positive()},
      {"pad_vocab_size_multiple", &ModelSpec::pad_vocab_size_multiple, positive()},
      {"d_conv", &ModelSpec::d_conv, positive()},
      {"rope_fraction", &ModelSpec::rope_fraction, one_of({0.5, 1.0})},
      {"mimo_rank", &ModelSpec::mimo_rank, at_least(1)},
      {"outproj_norm", &ModelSpec::outproj_norm},
  };
  return fields;
}

const Fields<DataSpec>& data_fields() {
  static const Fields<DataSpec> fields = {
      {"kind", &DataSpec::kind, one_of({"tinystories", "text", "spo"})},
      {"local_dir", &DataSpec::local_dir, {}, Role::path},
      {"max_train_bytes", &DataSpec::max_train_bytes, at_least(0)},
      {"max_valid_bytes", &DataSpec::max_valid_bytes, at_least(0)},
      {"path", &DataSpec::path, {}, Role::path},
      {"valid_path", &DataSpec::valid_path, {}, Role::path},
      {"valid_fraction", &DataSpec::valid_fraction, in_range('[', 0, 1, ')')},
      {"min_facts", &DataSpec::min_facts, at_least(1)},
      {"max_facts", &DataSpec::max_facts, at_least(1)},
      {"valid_examples", &DataSpec::valid_examples, positive()},
  };
  return fields;
}

const Fields<TargetSpec>& target_fields() {
  static const Fields<TargetSpec> fields = {
      {"kind", &TargetSpec::kind, one_of({"local"})},
      {"device", &TargetSpec::device, one_of({"cpu", "cuda", "auto"})},
      {"threads", &TargetSpec::threads, at_least(0)},
      {"precision", &TargetSpec::precision, one_of({"fp32", "bf16"})},
      {"cuda_graph", &TargetSpec::cuda_graph},
  };
  return fields;
}

const Fields<TaskArgs>& task_fields() {
  static const Fields<TaskArgs> fields = {
      {"steps", &TaskArgs::steps, positive()},
      {"batch", &TaskArgs::batch, positive()},
      {"seq_len", &TaskArgs::seq_len, positive()},
      {"lr", &TaskArgs::lr, positive()},
      {"schedule", &TaskArgs::schedule, one_of({"cosine", "wsd", "constant"})},
      {"warmup_steps", &TaskArgs::warmup_steps, at_least(0)},
      {"decay_steps", &TaskArgs::decay_steps, at_least(0)},
      {"min_lr_ratio", &TaskArgs::min_lr_ratio, in_range('[', 0, 1, ']')},
      {"weight_decay", &TaskArgs::weight_decay, at_least(0)},
      {"beta1", &TaskArgs::beta1, in_range('[', 0, 1, ')')},
      {"beta2", &TaskArgs::beta2, in_range('[', 0, 1, ')')},
      {"grad_clip", &TaskArgs::grad_clip, at_least(0)},
      {"eval_interval", &TaskArgs::eval_interval, at_least(0)},
      {"eval_windows", &TaskArgs::eval_windows, positive()},
      {"checkpoint_interval", &TaskArgs::checkpoint_interval, at_least(0)},
      {"log_interval", &TaskArgs::log_interval, positive()},
      {"seed", &TaskArgs::seed, at_least(0)},
      {"output_dir", &TaskArgs::output_dir},
      {"init_from", &TaskArgs::init_from, {}, Role::experiment_name},
      {"init_checkpoint", &TaskArgs::init_checkpoint},
      {"prompt", &TaskArgs::prompt},
      {"max_new_tokens", &TaskArgs::max_new_tokens, positive()},
      {"temperature", &TaskArgs::temperature, at_least(0)},
      {"top_k", &TaskArgs::top_k, at_least(0)},
      {"top_p", &TaskArgs::top_p, in_range('(', 0, 1, ']')},
      {"sample_tokens", &TaskArgs::sample_tokens, at_least(0)},
  };
  return fields;
}

template <class Spec>
std::vector<std::string> keys_of(const Fields<Spec>& fields) {
  std::vector<std::string> keys;
  for (const Field<Spec>& field : fields) keys.emplace_back(field.key);
  return keys;
}

template <class Spec>
const Field<Spec>* find_field(const Fields<Spec>& fields, std::string_view key) {
  for (const Field<Spec>& field : fields)
    if (field.key == key) return &field;
  return nullptr;
}

// ---- reading typed values ----

template <class T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a finite number";
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
}

// The node's value as T, or nothing when the node holds another type. A float field also takes an
// integer (`lr = 1`); an integer field never takes a float.
template <class T>
std::optional<T> read_as(const toml::node& node) {
  if constexpr (std::is_same_v<T, double>) {
    if (const auto* i = node.as_integer()) return static_cast<double>(i->get());
    const auto* f = node.as_floating_point();
    if (f && std::isfinite(f->get())) return f->get();
    return std::nullopt;
  } else {
    return node.value_exact<T>();
  }
}

// ---- where values come from ----

// The source of the values being applied: the file (messages give line and column, relative paths
// start at the file's folder) or one override (messages quote it, relative paths start at the cwd).
struct Origin {
  std::string label;  // "experiments.toml" or "--set steps=abc"
  bool in_file = false;
  fs::path path_base;

  std::string at(const toml::source_region& region) const {
    if (!in_file) return label;
    return label + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
  }
  std::string resolve_path(const std::string& path) const {
    if (path.empty() || fs::path(path).is_absolute()) return path;
    return (path_base / path).lexically_normal().string();
  }
};

[[noreturn]] void fail(const std::string& at, const std::string& dotted, const std::string& what) {
  throw Error(at + ": " + (dotted.empty() ? "" : dotted + ": ") + what);
}

Origin file_origin(const Document& doc) { return {doc.source, true, doc.base_dir}; }

// ---- looking things up in the document ----

const toml::table* table_at(const toml::table& table, std::string_view key) {
  const toml::node* node = table.get(key);
  return node ? node->as_table() : nullptr;
}

const toml::table* entry(const Document& doc, std::string_view section, const std::string& name) {
  const toml::table* entries = table_at(doc.root, section);
  return entries ? table_at(*entries, name) : nullptr;
}

struct Entry {
  const toml::key* key;
  const toml::node* node;
};

// toml::table is ordered by key; messages and listings follow the file instead.
std::vector<Entry> in_file_order(const toml::table& table) {
  std::vector<Entry> entries;
  for (const auto& [key, node] : table) entries.push_back({&key, &node});
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const toml::source_position &pa = a.key->source().begin, &pb = b.key->source().begin;
    return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
  });
  return entries;
}

std::vector<std::string> names_in(const Document& doc, std::string_view section) {
  std::vector<std::string> names;
  if (const toml::table* entries = table_at(doc.root, section))
    for (const Entry& e : in_file_order(*entries)) names.emplace_back(e.key->str());
  return names;
}

std::vector<std::string> target_names(const Document& doc) {
  std::vector<std::string> names = names_in(doc, "targets");
  if (std::find(names.begin(), names.end(), "local") == names.end()) names.insert(names.begin(), "local");
  return names;
}

// "" when `name` (a value of a field with `role`) names an existing entry, else the complaint.
std::string missing(const Document& doc, Role role, const std::string& name) {
  const auto check = [&](std::string_view what, std::string_view plural, const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), name) != names.end() ? "" : no_such(what, plural, name, names);
  };
  switch (role) {
    case Role::model_name: return check("model", "models", names_in(doc, "models"));
    case Role::data_name: return name.empty() ? "" : check("data source", "data sources", names_in(doc, "data"));
    case Role::target_name: return check("target", "targets", target_names(doc));
    case Role::experiment_name:
      return name.empty() || doc.resolved ? "" : check("experiment", "experiments", names_in(doc, "experiments"));
    default: return "";
  }
}

// ---- applying values ----

// Everything a value needs besides itself: where it came from and the document its names refer to.
struct Context {
  const Document& doc;
  Origin origin;
};

// Check `node` against `field` and store it in `spec`; `dotted` is the key's full name for messages.
template <class Spec>
void set_field(Spec& spec, const Field<Spec>& field, const toml::node& node, const std::string& dotted,
               const Context& ctx) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(spec.*member)>;
        const std::string at = ctx.origin.at(node.source());
        std::optional<T> value = read_as<T>(node);
        if (!value) fail(at, dotted, std::string("expected ") + type_name<T>() + ", got " + describe(node));
        if (field.check)
          if (const std::string rule = field.check(*value); !rule.empty())
            fail(at, dotted, rule + ", got " + value_text(*value));
        if constexpr (std::is_same_v<T, std::string>) {
          if (field.role == Role::path) *value = ctx.origin.resolve_path(*value);
          if (const std::string problem = missing(ctx.doc, field.role, *value); !problem.empty())
            fail(at, dotted, problem);
        }
        spec.*member = std::move(*value);
      },
      field.member);
}

template <class Spec>
struct Binding {
  Spec& spec;
  const Fields<Spec>& fields;
};

template <class Spec>
bool set_if_known(Binding<Spec> binding, const toml::key& key, const toml::node& node, const std::string& dotted,
                  const Context& ctx) {
  const Field<Spec>* field = find_field(binding.fields, key.str());
  if (field) set_field(binding.spec, *field, node, dotted + "." + std::string(key.str()), ctx);
  return field != nullptr;
}

// Apply every key of `table` (named `dotted`), in file order, to whichever binding has that field.
template <class... Specs>
void apply_table(const toml::table& table, const std::string& dotted, const Context& ctx, Binding<Specs>... bindings) {
  for (const Entry& e : in_file_order(table))
    if (!(set_if_known(bindings, *e.key, *e.node, dotted, ctx) || ...)) {
      std::vector<std::string> valid;
      (std::ranges::copy(keys_of(bindings.fields), std::back_inserter(valid)), ...);
      fail(ctx.origin.at(e.key->source()), dotted, unknown("key", std::string(e.key->str()), valid));
    }
}

// ---- consistency across fields ("" = fine) ----

std::string model_problem(const ModelSpec& model) {
  try {
    make_lm_config(model, 256);  // the vocabulary size plays no part in these checks
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string data_problem(const DataSpec& data) {
  if (data.kind == "text" && data.path.empty()) return "kind \"text\" needs path (the text file to read)";
  if (data.min_facts > data.max_facts)
    return "min_facts (" + std::to_string(data.min_facts) + ") must be <= max_facts (" +
           std::to_string(data.max_facts) + ")";
  return "";
}

std::string experiment_problem(const ExperimentSpec& spec) {
  if ((spec.task == "pretrain" || spec.task == "finetune") && spec.data.name.empty())
    return "task " + quote(spec.task) + " needs data (the name of a [data.*] table)";
  return "";
}

// ---- resolving entries of the file ----

// Entry `name` of `section` applied over `spec`, checked as a whole. An entry the file does not define
// (only the built-in "local" target: references are checked before this) leaves `spec` as it is.
template <class Spec>
Spec resolve_entry(const Document& doc, std::string_view section, const std::string& name, Spec spec,
                   const Fields<Spec>& fields, std::string (*problem)(const Spec&)) {
  spec.name = name;
  if (const toml::table* table = entry(doc, section, name)) {
    const Context ctx{doc, file_origin(doc)};
    const std::string dotted = std::string(section) + "." + name;
    apply_table(*table, dotted, ctx, Binding<Spec>{spec, fields});
    if (const std::string what = problem ? problem(spec) : ""; !what.empty())
      fail(ctx.origin.at(table->source()), dotted, what);
  }
  return spec;
}

template <class Spec>
Spec from_defaults(const Document& doc, std::string_view which, const Fields<Spec>& fields) {
  Spec spec;
  const toml::table* defaults = table_at(doc.root, "defaults");
  if (const toml::table* table = defaults ? table_at(*defaults, which) : nullptr)
    apply_table(*table, "defaults." + std::string(which), Context{doc, file_origin(doc)}, Binding<Spec>{spec, fields});
  return spec;
}

ModelSpec resolve_model(const Document& doc, const std::string& name) {
  return resolve_entry(doc, "models", name, from_defaults(doc, "model", model_fields()), model_fields(), model_problem);
}

DataSpec resolve_data(const Document& doc, const std::string& name) {
  return name.empty() ? DataSpec{} : resolve_entry(doc, "data", name, DataSpec{}, data_fields(), data_problem);
}

TargetSpec resolve_target(const Document& doc, const std::string& name) {
  return resolve_entry<TargetSpec>(doc, "targets", name, TargetSpec{}, target_fields(), nullptr);
}

ExperimentHead head_of(const ExperimentSpec& spec) {
  return {spec.description, spec.task, spec.model.name, spec.data.name, spec.target.name};
}

// Experiment `name` as the file says, without overrides.
ExperimentSpec resolve_experiment(const Document& doc, const std::string& name) {
  const toml::table& table = *entry(doc, "experiments", name);
  const std::string dotted = "experiments." + name;
  const Context ctx{doc, file_origin(doc)};
  ExperimentSpec spec;
  spec.name = name;
  spec.args = from_defaults(doc, "experiment", task_fields());
  ExperimentHead head;
  apply_table(table, dotted, ctx, Binding<ExperimentHead>{head, head_fields()},
              Binding<TaskArgs>{spec.args, task_fields()});
  const std::string at = ctx.origin.at(table.source());
  if (head.task.empty()) fail(at, dotted, "missing key \"task\" (one of " + spelled(kTasks) + ")");
  if (head.model.empty()) fail(at, dotted, "missing key \"model\" (the name of a [models.*] table)");
  spec.description = head.description;
  spec.task = head.task;
  spec.model = resolve_model(doc, head.model);
  spec.data = resolve_data(doc, head.data);
  spec.target = resolve_target(doc, head.target);
  if (const std::string what = experiment_problem(spec); !what.empty()) fail(at, dotted, what);
  return spec;
}

// ---- overrides ----

// An override's value, as a one-key table {v = VALUE} (the node needs an owner): the TOML value `raw`
// spells or, when it spells none or `want_string` and it spells something else, `raw` as a string.
toml::table override_value(const std::string& raw, bool want_string) {
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + raw);
  } catch (const toml::parse_error&) {
  }
  const toml::node* value = parsed.get("v");
  if (parsed.size() == 1 && value && (value->is_string() || !want_string)) return parsed;
  return toml::table{{"v", raw}};
}

// Set field `key` of `binding` from `raw`; false when it has no such field.
template <class Spec>
bool override_field(Binding<Spec> binding, std::string_view key, const std::string& raw, const std::string& dotted,
                    const Context& ctx) {
  const Field<Spec>* field = find_field(binding.fields, key);
  if (!field) return false;
  const bool want_string = std::holds_alternative<std::string Spec::*>(field->member);
  set_field(binding.spec, *field, *override_value(raw, want_string).get("v"), dotted, ctx);
  return true;
}

// "model.d_state=8": a field of one of the resolved copies.
template <class Spec>
void override_copy(Spec& copy, const Fields<Spec>& fields, const std::string& group, const std::string& key,
                   const std::string& raw, const Context& ctx) {
  if (!override_field(Binding<Spec>{copy, fields}, key, raw, group + "." + key, ctx))
    fail(ctx.origin.label, group, unknown("key", key, keys_of(fields)));
}

void apply_override(ExperimentSpec& spec, const std::string& text, const Document& doc) {
  const Context ctx{doc, {"--set " + text, false, fs::current_path()}};
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail(ctx.origin.label, "", "expected key=value");
  const std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
  if (const size_t dot = key.find('.'); dot != std::string::npos) {
    const std::string group = key.substr(0, dot), field = key.substr(dot + 1);
    if (group == "model") return override_copy(spec.model, model_fields(), group, field, raw, ctx);
    if (group == "target") return override_copy(spec.target, target_fields(), group, field, raw, ctx);
    if (group == "data") {
      if (spec.data.name.empty())
        fail(ctx.origin.label, group, "experiment " + quote(spec.name) + " has no data; set data=NAME first");
      return override_copy(spec.data, data_fields(), group, field, raw, ctx);
    }
  }
  if (override_field(Binding<TaskArgs>{spec.args, task_fields()}, key, raw, key, ctx)) return;
  ExperimentHead head = head_of(spec);
  if (override_field(Binding<ExperimentHead>{head, head_fields()}, key, raw, key, ctx)) {
    spec.description = head.description;
    spec.task = head.task;
    if (key == "model") spec.model = resolve_model(doc, head.model);
    if (key == "data") spec.data = resolve_data(doc, head.data);
    if (key == "target") spec.target = resolve_target(doc, head.target);
    return;
  }
  std::vector<std::string> valid;
  const auto add = [&](const std::string& prefix, const std::vector<std::string>& keys) {
    for (const std::string& k : keys) valid.push_back(prefix + k);
  };
  add("", keys_of(head_fields()));
  add("", keys_of(task_fields()));
  add("model.", keys_of(model_fields()));
  add("data.", keys_of(data_fields()));
  add("target.", keys_of(target_fields()));
  fail(ctx.origin.label, "", unknown("key", key, valid));
}

// Apply `overrides` in order, then check that the result still holds together.
void apply_overrides(ExperimentSpec& spec, const std::vector<std::string>& overrides, const Document& doc) {
  if (overrides.empty()) return;
  for (const std::string& text : overrides) apply_override(spec, text, doc);
  const std::string label = "with --set " + join(overrides, " --set ");
  if (const std::string what = model_problem(spec.model); !what.empty()) fail(label, "model", what);
  if (const std::string what = data_problem(spec.data); !what.empty()) fail(label, "data", what);
  if (const std::string what = experiment_problem(spec); !what.empty()) fail(label, "", what);
}

// ---- the file's layout ----

const std::vector<std::string> kSections = {"defaults", "models", "data", "targets", "experiments"};
const std::vector<std::string> kDefaults = {"model", "experiment"};

bool is_bare_key(std::string_view name) {
  return !name.empty() && std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

// Only the known tables, each entry a table with a usable name; `resolved` a boolean.
void check_layout(const Document& doc) {
  const Origin origin = file_origin(doc);
  for (const auto& [key, node] : in_file_order(doc.root)) {
    const std::string section(key->str());
    if (section == "resolved") {
      if (!node->is_boolean()) fail(origin.at(node->source()), section, "expected a boolean, got " + describe(*node));
      continue;
    }
    if (std::ranges::find(kSections, section) == kSections.end())
      fail(origin.at(key->source()), "", unknown("table", section, kSections));
    const toml::table* entries = node->as_table();
    if (!entries) fail(origin.at(node->source()), section, "expected a table, got " + describe(*node));
    for (const auto& [name_key, entry] : in_file_order(*entries)) {
      const std::string name(name_key->str()), dotted = section + "." + name;
      if (section == "defaults" && std::ranges::find(kDefaults, name) == kDefaults.end())
        fail(origin.at(name_key->source()), section, unknown("table", name, kDefaults));
      if (!is_bare_key(name))
        fail(origin.at(name_key->source()), section,
             "name " + quote(name) + " may only hold letters, digits, '-' and '_' (names become folders and keys)");
      if (!entry->is_table())
        fail(origin.at(entry->source()), dotted, "expected a table ([" + dotted + "]), got " + describe(*entry));
    }
  }
}

// Everything in the file, checked: the layout, the defaults, every entry, every experiment resolved.
void validate(const Document& doc) {
  check_layout(doc);
  from_defaults(doc, "model", model_fields());
  from_defaults(doc, "experiment", task_fields());
  for (const std::string& name : names_in(doc, "models")) resolve_model(doc, name);
  for (const std::string& name : names_in(doc, "data")) resolve_data(doc, name);
  for (const std::string& name : names_in(doc, "targets")) resolve_target(doc, name);
  for (const std::string& name : names_in(doc, "experiments")) resolve_experiment(doc, name);
}

// ---- writing TOML ----

// One "key = value" line per field, in table order.
template <class Spec>
void write_fields(std::ostream& out, const Spec& spec, const Fields<Spec>& fields) {
  for (const Field<Spec>& field : fields)
    out << field.key << " = " << std::visit([&](auto member) { return value_text(spec.*member); }, field.member)
        << "\n";
}

// Where the tools look when the current folder has no experiments.toml: the source tree they were built
// from, then the copy `cmake --install` puts beside them (both paths come from the build, CMakeLists.txt).
std::vector<fs::path> shipped_experiments() {
  return {fs::path(SSM_SOURCE_DIR) / "experiments.toml", fs::path(SSM_INSTALLED_EXPERIMENTS)};
}

}  // namespace

// ---- ExperimentsFile ----

ExperimentsFile::ExperimentsFile(std::shared_ptr<const detail::ExperimentsDocument> document)
    : document_(std::move(document)) {}

ExperimentsFile ExperimentsFile::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in, "cannot open experiments file ", path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, fs::absolute(path).parent_path().string());
}

ExperimentsFile ExperimentsFile::parse(std::string_view text, const std::string& source_name,
                                       const std::string& base_dir) {
  auto doc = std::make_shared<Document>();
  doc->source = source_name;
  doc->base_dir = base_dir;
  try {
    doc->root = toml::parse(text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    fail(file_origin(*doc).at(e.source()), "", std::string(e.description()));
  }
  doc->resolved = doc->root["resolved"].value_or(false);
  validate(*doc);
  return ExperimentsFile(std::move(doc));
}

const std::string& ExperimentsFile::source() const { return document_->source; }

std::vector<std::string> ExperimentsFile::experiment_names() const { return names_in(*document_, "experiments"); }

std::vector<std::string> ExperimentsFile::target_names() const { return tasks::target_names(*document_); }

std::string ExperimentsFile::list() const {
  std::vector<std::array<std::string, 5>> rows;
  for (const std::string& name : experiment_names()) {
    const ExperimentSpec spec = resolve_experiment(*document_, name);
    rows.push_back({name, spec.task, spec.model.name, spec.data.name.empty() ? "-" : spec.data.name, spec.description});
  }
  std::array<size_t, 4> width{};
  for (const auto& row : rows)
    for (size_t c = 0; c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < width.size(); ++c) line += row[c] + std::string(width[c] - row[c].size() + 2, ' ');
    line += row[4];
    out += line.substr(0, line.find_last_not_of(' ') + 1) + "\n";
  }
  return out;
}

ExperimentSpec ExperimentsFile::resolve(const std::string& name, const std::vector<std::string>& overrides,
                                        const std::string& target_override) const {
  const Document& doc = *document_;
  if (!entry(doc, "experiments", name))
    throw Error(doc.source + ": " + no_such("experiment", "experiments", name, experiment_names()));
  ExperimentSpec spec = resolve_experiment(doc, name);
  if (!target_override.empty()) {
    if (const std::string what = missing(doc, Role::target_name, target_override); !what.empty())
      throw Error("--target " + target_override + ": " + what);
    spec.target = resolve_target(doc, target_override);
  }
  apply_overrides(spec, overrides, doc);
  return spec;
}

ExperimentSpec resolve_adhoc(const std::string& task, const std::vector<std::string>& overrides) {
  static const Document no_file{"(no experiments file)", {}, {}, false};
  SSM_CHECK(std::ranges::find(kTasks, Value(task)) != kTasks.end(), "task must be one of ", spelled(kTasks), ", got ",
            quote(task));
  ExperimentSpec spec;
  spec.name = spec.model.name = spec.data.name = "adhoc";
  spec.task = task;
  apply_overrides(spec, overrides, no_file);
  return spec;
}

std::string to_toml(const ExperimentSpec& spec) {
  for (const std::string* name : {&spec.name, &spec.model.name, &spec.target.name})
    SSM_CHECK(is_bare_key(*name), "to_toml: name ", quote(*name), " may only hold letters, digits, '-' and '_'");
  SSM_CHECK(spec.data.name.empty() || is_bare_key(spec.data.name), "to_toml: data name ", quote(spec.data.name),
            " may only hold letters, digits, '-' and '_'");
  std::ostringstream out;
  out << "# The experiment " << quote(spec.name) << " resolved: every default filled in, every reference followed.\n"
      << "# Its init_from, if any, names an experiment of the file it was resolved from.\n"
      << "resolved = true\n";
  out << "\n[models." << spec.model.name << "]\n";
  write_fields(out, spec.model, model_fields());
  if (!spec.data.name.empty()) {
    out << "\n[data." << spec.data.name << "]\n";
    write_fields(out, spec.data, data_fields());
  }
  out << "\n[targets." << spec.target.name << "]\n";
  write_fields(out, spec.target, target_fields());
  out << "\n[experiments." << spec.name << "]\n";
  write_fields(out, head_of(spec), head_fields());
  write_fields(out, spec.args, task_fields());
  return out.str();
}

std::string default_experiments_path() {
  if (fs::is_regular_file("experiments.toml")) return "experiments.toml";
  std::string places;
  for (const fs::path& shipped : shipped_experiments()) {
    if (fs::is_regular_file(shipped)) return shipped.string();
    places += (places.empty() ? "" : " nor at ") + shipped.string();
  }
  throw Error("no experiments.toml in the current directory (" + fs::current_path().string() + ") nor at " +
              places + "; name the file with --config PATH");
}

}  // namespace ssm::tasks
