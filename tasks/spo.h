// tasks/spo.h — the fine-tuning task: turn a sentence into its subject–predicate–object facts.
//
// A byte-level model pretrained on TinyStories learns to read "Alice reads a book and Bob drives a
// car." and answer "[(alice, book, reads), (bob, car, drives)]". This file owns everything about the
// task's text: the vocabulary, the seeded sentence generator, the target format, the parser that
// reads a model's answer back, and the exact-match comparison used for scoring. The training code
// feeds spo_prompt(sentence), then the target, then end-of-text, with the loss on the target only.
//
// Generalisation is measured on combinations, not words: every (subject, predicate, object)
// combination is fixed once and for all in Train or Heldout (is_heldout_combination), so a held-out
// sentence combines words the model has seen only in other combinations.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/random.h"

namespace ssm::tasks {

// One fact, in the target's order: (subject, object, predicate), all lower case, no article.
struct Triple {
  std::string subject, object, predicate;
  bool operator==(const Triple&) const = default;
  auto operator<=>(const Triple&) const = default;
};

struct SpoExample {
  std::string sentence;         // "Alice reads a book and Bob drives a car."
  std::vector<Triple> triples;  // in sentence order
  std::string target;           // format_triples(triples)
};

enum class SpoSplit { Train, Heldout };

// The words sentences are made of (the table itself is in spo.cpp, in one place).
struct SpoObject {
  std::string_view article;  // "a", "an" or "the"; the sentence says it, the target drops it
  std::string_view noun;     // "apple"
};
struct SpoVerb {
  std::string_view word;                  // third person singular: "reads"
  std::vector<std::string_view> objects;  // the nouns it plausibly takes
};
struct SpoVocabulary {
  std::vector<std::string_view> names;  // capitalised as in the sentence: "Alice"
  std::vector<SpoVerb> verbs;
  std::vector<SpoObject> objects;  // every noun a verb names, each once
};
const SpoVocabulary& spo_vocabulary();

// Seeded and deterministic: the same (seed, split, facts range) gives the same examples on every
// machine (only integer arithmetic on ssm::Generator draws). Each example has a uniformly drawn
// number of facts in [min_facts, max_facts], with distinct subjects, each fact a combination of
// `split` drawn uniformly among that subject's combinations in the split. Sentence shapes:
//   1 fact   "Alice reads a book."
//   2 facts  "Alice reads a book and Bob drives a car."
//   3+ facts "Alice reads a book, Bob drives a car and Carol eats an apple."
// Throws ssm::Error unless 1 <= min_facts <= max_facts <= the number of names.
class SpoGenerator {
 public:
  SpoGenerator(uint64_t seed, SpoSplit split, int min_facts = 1, int max_facts = 3);
  SpoExample next();

 private:
  struct Fact {  // one (verb, object) a subject may take in this split; indices into spo_vocabulary()
    size_t verb, object;
  };
  Generator rng_;
  int min_facts_, max_facts_;
  std::vector<std::vector<Fact>> facts_by_name_;  // [name index] -> the split's facts for that subject
};

// Whether a combination belongs to the held-out split: a fixed hash of its three words puts about 20% of
// all combinations there. It depends on nothing else (no seed), so every run agrees on the partition.
bool is_heldout_combination(const Triple& t);

// What the model reads before its answer: the sentence and a newline.
std::string spo_prompt(const std::string& sentence);

// "[(alice, book, reads), (bob, car, drives)]"; "[]" for no facts.
std::string format_triples(const std::vector<Triple>& triples);

// Reads a model's answer. Never throws; linear in the input; accepts any bytes. Exactly:
//   * Only the text before the first '\n' is read (the answer ends at the end of its line).
//   * A group is '(' body ')' where the body holds no '(' — a '(' inside abandons the open group
//     and starts a new one there, so "((a, b, c))" yields (a, b, c). Anything outside groups
//     ('[', ']', separators, stray ')', words) is ignored, and a '(' never closed yields nothing.
//   * A group is a triple when its body splits at ',' into exactly three fields that are non-empty
//     after trimming ASCII whitespace at both ends; any other group is skipped.
//   * Fields keep their inner bytes as they are (spaces, NUL, UTF-8), except that ASCII letters are
//     lower-cased. The triple's fields are in the target's order: (subject, object, predicate).
// So parse_triples(format_triples(ts)) == ts whenever the fields are trimmed, lower case and free
// of '(', ')', ',' and '\n' — true of every generated example.
std::vector<Triple> parse_triples(std::string_view text);

// Exact match of fact sets: the same triples, ignoring order and repeats.
bool same_fact_set(const std::vector<Triple>& a, const std::vector<Triple>& b);

}  // namespace ssm::tasks
