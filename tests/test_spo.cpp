// Tests for tasks/spo.h: the vocabulary table's invariants, the target format, the seeded generator
// (determinism, fact counts, sentence shapes rebuilt here from the triples, round trips through the
// parser), the train/held-out partition of combinations, the parser on malformed and hostile input
// (checked against a small state-machine reading of the documented grammar written here), and
// fact-set scoring. Everything is seeded and runs in well under a second.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tasks/spo.h"
#include "tensor/error.h"

namespace {

using namespace std::string_literals;
using ssm::tasks::format_triples;
using ssm::tasks::is_heldout_combination;
using ssm::tasks::parse_triples;
using ssm::tasks::same_fact_set;
using ssm::tasks::SpoExample;
using ssm::tasks::SpoGenerator;
using ssm::tasks::SpoSplit;
using ssm::tasks::spo_vocabulary;
using ssm::tasks::Triple;

std::string lower(std::string_view s) {
  std::string out;
  for (const char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<SpoExample> draw(SpoGenerator& gen, int n) {
  std::vector<SpoExample> out;
  for (int i = 0; i < n; ++i) out.push_back(gen.next());
  return out;
}

std::vector<std::string> sentences(const std::vector<SpoExample>& examples) {
  std::vector<std::string> out;
  for (const SpoExample& e : examples) out.push_back(e.sentence);
  return out;
}

// Every (subject, object, predicate) the vocabulary allows, enumerated from the table.
std::vector<Triple> all_combinations() {
  std::vector<Triple> out;
  for (const auto name : spo_vocabulary().names)
    for (const auto& verb : spo_vocabulary().verbs)
      for (const auto noun : verb.objects) out.push_back({lower(name), std::string(noun), std::string(verb.word)});
  return out;
}

// ---------------------------------------------------------------- vocabulary and format

TEST(SpoVocabulary, TableIsConsistent) {
  const auto& v = spo_vocabulary();
  const auto lower_word = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  };
  ASSERT_GE(v.names.size(), 20u);
  EXPECT_EQ(std::set<std::string_view>(v.names.begin(), v.names.end()).size(), v.names.size()) << "duplicate name";
  for (const auto name : v.names) {
    EXPECT_TRUE(name[0] >= 'A' && name[0] <= 'Z' && lower_word(name.substr(1))) << name;
  }
  ASSERT_GE(v.verbs.size(), 15u);
  ASSERT_GE(v.objects.size(), 25u);
  std::set<std::string_view> verbs, nouns, used_nouns;
  for (const auto& object : v.objects) {
    EXPECT_TRUE(nouns.insert(object.noun).second) << "duplicate object " << object.noun;
    EXPECT_TRUE(lower_word(object.noun)) << object.noun;
    const bool vowel = std::string_view("aeiou").find(object.noun[0]) != std::string_view::npos;
    if (object.article != "the") {
      EXPECT_EQ(object.article, vowel ? "an" : "a") << object.noun;
    }
  }
  for (const auto& verb : v.verbs) {
    EXPECT_TRUE(verbs.insert(verb.word).second) << "duplicate verb " << verb.word;
    EXPECT_TRUE(lower_word(verb.word) && verb.word.back() == 's') << verb.word;
    EXPECT_FALSE(verb.objects.empty()) << verb.word;
    for (const auto noun : verb.objects) {
      EXPECT_TRUE(nouns.contains(noun)) << verb.word << " takes the unknown object " << noun;
      used_nouns.insert(noun);
    }
  }
  EXPECT_EQ(used_nouns, nouns) << "an object no verb takes";
}

TEST(SpoFormat, BriefExampleAndEmpty) {
  const std::vector<Triple> facts = {{"alice", "book", "reads"}, {"bob", "car", "drives"}};
  EXPECT_EQ(format_triples(facts), "[(alice, book, reads), (bob, car, drives)]");
  EXPECT_EQ(format_triples({}), "[]");
  EXPECT_EQ(parse_triples("[(alice, book, reads), (bob, car, drives)]"), facts);
  EXPECT_EQ(parse_triples("[]"), std::vector<Triple>{});
  EXPECT_EQ(ssm::tasks::spo_prompt("Alice reads a book and Bob drives a car."),
            "Alice reads a book and Bob drives a car.\n");
}

// ---------------------------------------------------------------- generator

TEST(SpoGenerator, SameSeedSameExamplesOtherSeedOthers) {
  SpoGenerator a(7, SpoSplit::Train), b(7, SpoSplit::Train), c(8, SpoSplit::Train);
  const auto from_a = draw(a, 200), from_b = draw(b, 200);
  for (size_t i = 0; i < from_a.size(); ++i) {
    EXPECT_EQ(from_a[i].sentence, from_b[i].sentence) << i;
    EXPECT_EQ(from_a[i].triples, from_b[i].triples) << i;
    EXPECT_EQ(from_a[i].target, from_b[i].target) << i;
  }
  EXPECT_NE(sentences(draw(c, 20)), sentences(std::vector(from_a.begin(), from_a.begin() + 20)));
  SpoGenerator heldout(7, SpoSplit::Heldout);
  EXPECT_NE(sentences(draw(heldout, 20)), sentences(std::vector(from_a.begin(), from_a.begin() + 20)));
}

TEST(SpoGenerator, FactCountsAreUniformInRangeWithDistinctSubjects) {
  const int names = static_cast<int>(spo_vocabulary().names.size());
  for (const auto& [lo, hi] : std::vector<std::pair<int, int>>{{1, 3}, {1, 1}, {2, 5}, {names, names}}) {
    SpoGenerator gen(3, SpoSplit::Train, lo, hi);
    const int n = 3000;
    std::map<int, int> histogram;
    for (const SpoExample& e : draw(gen, n)) {
      const int count = static_cast<int>(e.triples.size());
      ++histogram[count];
      std::set<std::string> subjects;
      for (const Triple& t : e.triples) subjects.insert(t.subject);
      EXPECT_EQ(subjects.size(), e.triples.size()) << "repeated subject in: " << e.sentence;
    }
    ASSERT_EQ(histogram.begin()->first, lo);
    ASSERT_EQ(histogram.rbegin()->first, hi);
    const double expected = static_cast<double>(n) / (hi - lo + 1);
    for (int k = lo; k <= hi; ++k) {
      EXPECT_NEAR(histogram[k], expected, 0.2 * expected) << "count " << k << " in [" << lo << ", " << hi << "]";
    }
  }
  SpoGenerator defaults(3, SpoSplit::Heldout);
  for (const SpoExample& e : draw(defaults, 500)) {
    EXPECT_GE(e.triples.size(), 1u);
    EXPECT_LE(e.triples.size(), 3u);
  }
}

TEST(SpoGenerator, RejectsImpossibleFactRanges) {
  const int names = static_cast<int>(spo_vocabulary().names.size());
  for (const auto& [lo, hi] : std::vector<std::pair<int, int>>{{0, 3}, {3, 2}, {-1, 1}, {1, names + 1}}) {
    try {
      SpoGenerator(0, SpoSplit::Train, lo, hi);
      ADD_FAILURE() << "accepted min_facts " << lo << ", max_facts " << hi;
    } catch (const ssm::Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("min_facts = " + std::to_string(lo)), std::string::npos) << message;
      EXPECT_NE(message.find("max_facts = " + std::to_string(hi)), std::string::npos) << message;
    }
  }
}

// The sentence the brief describes for these facts, built independently of the generator: each
// clause "Name verb article object", one clause alone, two joined by " and ", three or more as a
// comma list whose last clause follows " and ". Fails the test on a word outside the vocabulary or
// a verb/object pair its table does not allow.
std::string expected_sentence(const std::vector<Triple>& triples) {
  const auto& v = spo_vocabulary();
  std::vector<std::string> clauses;
  for (const Triple& t : triples) {
    const auto name = std::find_if(v.names.begin(), v.names.end(), [&](auto n) { return lower(n) == t.subject; });
    const auto verb = std::find_if(v.verbs.begin(), v.verbs.end(), [&](auto& w) { return w.word == t.predicate; });
    const auto object = std::find_if(v.objects.begin(), v.objects.end(), [&](auto& o) { return o.noun == t.object; });
    if (name == v.names.end() || verb == v.verbs.end() || object == v.objects.end()) {
      ADD_FAILURE() << "a word outside the vocabulary in " << format_triples({t});
      return {};
    }
    EXPECT_NE(std::find(verb->objects.begin(), verb->objects.end(), t.object), verb->objects.end())
        << t.predicate << " does not take " << t.object;
    clauses.push_back(std::string(*name) + " " + t.predicate + " " + std::string(object->article) + " " + t.object);
  }
  if (clauses.size() == 1) return clauses[0] + ".";
  if (clauses.size() == 2) return clauses[0] + " and " + clauses[1] + ".";
  std::string out = clauses[0];
  for (size_t i = 1; i + 1 < clauses.size(); ++i) out += ", " + clauses[i];
  return out + " and " + clauses.back() + ".";
}

TEST(SpoGenerator, SentencesFollowTheShapesAndTargetsRoundTrip) {
  for (const SpoSplit split : {SpoSplit::Train, SpoSplit::Heldout}) {
    SpoGenerator gen(11, split, 1, 5);
    for (int i = 0; i < 2500; ++i) {
      const SpoExample e = gen.next();
      ASSERT_EQ(e.sentence, expected_sentence(e.triples)) << "example " << i;
      ASSERT_EQ(e.target, format_triples(e.triples)) << e.sentence;
      ASSERT_EQ(parse_triples(e.target), e.triples) << e.target;
      ASSERT_EQ(parse_triples(e.target + "\n[(x, y, z)]"), e.triples) << e.target;
    }
  }
}

// ---------------------------------------------------------------- train / held-out partition

TEST(SpoSplit, AboutAFifthOfCombinationsHeldOutAndEveryWordTrained) {
  const std::vector<Triple> combinations = all_combinations();
  std::set<std::string> trained_words;
  int heldout = 0;
  for (const Triple& t : combinations) {
    if (is_heldout_combination(t)) {
      ++heldout;
    } else {
      trained_words.insert({t.subject, t.object, t.predicate});
    }
  }
  const double fraction = static_cast<double>(heldout) / static_cast<double>(combinations.size());
  EXPECT_GT(fraction, 0.15);
  EXPECT_LT(fraction, 0.25);
  for (const auto name : spo_vocabulary().names) EXPECT_TRUE(trained_words.contains(lower(name))) << name;
  for (const auto& verb : spo_vocabulary().verbs) EXPECT_TRUE(trained_words.contains(std::string(verb.word)));
  for (const auto& object : spo_vocabulary().objects) EXPECT_TRUE(trained_words.contains(std::string(object.noun)));
}

TEST(SpoSplit, ExamplesUseOnlyTheirSplitsCombinations) {
  for (const SpoSplit split : {SpoSplit::Train, SpoSplit::Heldout}) {
    for (const uint64_t seed : {0, 1, 99}) {
      SpoGenerator gen(seed, split, 1, 4);
      std::set<std::string> words_seen;
      for (const SpoExample& e : draw(gen, 2000)) {
        for (const Triple& t : e.triples) {
          ASSERT_EQ(is_heldout_combination(t), split == SpoSplit::Heldout) << format_triples({t});
          words_seen.insert({t.subject, t.object, t.predicate});
        }
      }
      // Sampling reaches every word of the vocabulary, in both splits.
      const auto& v = spo_vocabulary();
      EXPECT_EQ(words_seen.size(), v.names.size() + v.verbs.size() + v.objects.size()) << "seed " << seed;
    }
  }
}

// ---------------------------------------------------------------- parser

// The documented grammar read as a state machine over the first line: '(' (re)opens a group, ')'
// closes an open one, which counts when its body has exactly two commas and three fields that are
// non-empty after trimming ASCII whitespace; fields are lower-cased.
std::vector<Triple> reference_parse(std::string_view text) {
  const auto trim_lower = [](std::string_view s) {
    const auto space = [](char c) { return c != '\n' && std::isspace(static_cast<unsigned char>(c)); };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return lower(s);
  };
  std::vector<Triple> out;
  bool open = false;
  std::vector<std::string> fields;
  for (const char c : text) {
    if (c == '\n') break;
    if (c == '(') {
      open = true;
      fields.assign(1, "");
    } else if (c == ')' && open) {
      open = false;
      if (fields.size() != 3) continue;
      for (std::string& f : fields) f = trim_lower(f);
      if (!fields[0].empty() && !fields[1].empty() && !fields[2].empty()) out.push_back({fields[0], fields[1], fields[2]});
    } else if (c == ',' && open) {
      fields.emplace_back();
    } else if (open) {
      fields.back() += c;
    }
  }
  return out;
}

TEST(SpoParse, MalformedAndOddInputs) {
  const Triple abc{"a", "b", "c"}, def{"d", "e", "f"};
  const std::vector<std::pair<std::string, std::vector<Triple>>> cases = {
      {"", {}},
      {"[", {}},
      {"[(a, b", {}},
      {"[(a, b, c", {}},
      {"(a,b,c)(d,e,f)", {abc, def}},
      {"[(a, b, c), (d, e)]", {abc}},
      {"[(a, b, c), (d, e, f, g)]", {abc}},
      {"[(a, , c), ( , b, c), (a, b,  )]", {}},
      {"))(a, b, c)) ) (d, e, f)(", {abc, def}},
      {"((a, b, c))", {abc}},
      {"(x, (a, b, c), y) (d, (e, f)", {abc}},
      {"[( A ,\tB ,C\r)]", {abc}},
      {"(Ice Cream, the  Red Car, ÉATS)", {{"ice cream", "the  red car", "Éats"}}},
      {"(a\0b, c, d)"s, {{"a\0b"s, "c", "d"}}},
      {"[(a, b, c)]\n[(d, e, f)]", {abc}},
      {"[(a, b\n, c)]", {}},
      {"\n(a, b, c)", {}},
      {"the facts are (a, b, c) and [d, e, f] and (d, e, f)", {abc, def}},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(parse_triples(text), expected) << "input: " << text;
    EXPECT_EQ(reference_parse(text), expected) << "the test's reference disagrees on: " << text;
  }
}

TEST(SpoParse, MegabyteInputs) {
  const size_t megabyte = size_t{1} << 20;
  EXPECT_TRUE(parse_triples("[" + std::string(megabyte, '(')).empty());
  EXPECT_TRUE(parse_triples(std::string(megabyte, ')')).empty());
  EXPECT_TRUE(parse_triples("(" + std::string(megabyte, ',') + ")").empty());

  const std::string group = "(a, b, c), ";
  std::string repeated = "[";
  while (repeated.size() < megabyte) repeated += group;
  const std::vector<Triple> many = parse_triples(repeated);
  EXPECT_EQ(many.size(), (repeated.size() - 1) / group.size());
  EXPECT_TRUE(std::all_of(many.begin(), many.end(), [](const Triple& t) { return t == Triple{"a", "b", "c"}; }));

  const std::vector<Triple> long_field = parse_triples("(" + std::string(megabyte, 'X') + ", b, c)");
  ASSERT_EQ(long_field.size(), 1u);
  EXPECT_EQ(long_field[0].subject, std::string(megabyte, 'x'));
}

// A random edit of `s`: delete, insert or replace one byte, the inserted bytes biased to the grammar's.
void mutate(std::string& s, ssm::Generator& rng) {
  static const std::string kBytes = "(),[] \n\t\r\0aAzZ"s;
  const auto below = [&](size_t n) { return static_cast<size_t>(rng.next_u64() % n); };
  const char byte = rng.next_u64() % 2 ? kBytes[below(kBytes.size())] : static_cast<char>(below(256));
  switch (below(3)) {
    case 0:
      if (!s.empty()) s.erase(below(s.size()), 1);
      break;
    case 1:
      s.insert(s.begin() + static_cast<std::ptrdiff_t>(below(s.size() + 1)), byte);
      break;
    default:
      if (!s.empty()) s[below(s.size())] = byte;
  }
}

// Seeded fuzz: random bytes, and mutations of real targets (so that many inputs are nearly well
// formed). Each input must parse without throwing, agree with the reference reading, and give
// triples whose fields obey the contract and survive a format/parse round trip.
TEST(SpoParse, FuzzAgreesWithReferenceAndNeverThrows) {
  ssm::Generator rng(2024);
  SpoGenerator examples(5, SpoSplit::Train, 1, 4);
  size_t triples_found = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string text;
    if (i % 2 == 0) {
      text.resize(rng.next_u64() % 96);
      for (char& c : text) c = static_cast<char>(rng.next_u64() % 256);
    } else {
      text = examples.next().target;
      for (int edits = static_cast<int>(rng.next_u64() % 6); edits > 0; --edits) mutate(text, rng);
    }
    std::vector<Triple> parsed;
    ASSERT_NO_THROW(parsed = parse_triples(text)) << "case " << i;
    ASSERT_EQ(parsed, reference_parse(text)) << "case " << i;
    for (const Triple& t : parsed) {
      for (const std::string& field : {t.subject, t.object, t.predicate}) {
        ASSERT_FALSE(field.empty()) << "case " << i;
        ASSERT_EQ(field.find_first_of("(),\n"), std::string::npos) << "case " << i;
        ASSERT_EQ(lower(field), field) << "case " << i;
        ASSERT_FALSE(std::isspace(static_cast<unsigned char>(field.front())) ||
                     std::isspace(static_cast<unsigned char>(field.back())))
            << "case " << i;
      }
    }
    ASSERT_EQ(parse_triples(format_triples(parsed)), parsed) << "case " << i;
    triples_found += parsed.size();
  }
  EXPECT_GT(triples_found, 2000u) << "the fuzz rarely reached the accepting path";
}

// ---------------------------------------------------------------- scoring

TEST(SpoScore, SameFactSetIgnoresOrderAndRepeatsOnly) {
  const Triple a{"alice", "book", "reads"}, b{"bob", "car", "drives"}, c{"carol", "apple", "eats"};
  EXPECT_TRUE(same_fact_set({}, {}));
  EXPECT_TRUE(same_fact_set({a, b}, {a, b}));
  EXPECT_TRUE(same_fact_set({a, b}, {b, a}));
  EXPECT_TRUE(same_fact_set({a, b, a}, {b, a, b, b}));
  EXPECT_FALSE(same_fact_set({a}, {}));
  EXPECT_FALSE(same_fact_set({}, {a}));
  EXPECT_FALSE(same_fact_set({a, b}, {a, b, c}));
  EXPECT_FALSE(same_fact_set({a, b}, {a, c}));
  EXPECT_FALSE(same_fact_set({a}, {Triple{"alice", "reads", "book"}}));  // fields in the wrong places
  EXPECT_FALSE(same_fact_set({a}, {Triple{"alice", "book", "read"}}));
}

}  // namespace
