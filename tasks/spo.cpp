// tasks/spo.cpp — the SPO vocabulary, generator, target format, parser and scoring (see spo.h).
#include "tasks/spo.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "tensor/error.h"

namespace ssm::tasks {

const SpoVocabulary& spo_vocabulary() {
  static const SpoVocabulary vocabulary{
      .names = {"Alice", "Bob", "Carol", "Dan",  "Emma", "Fred",   "Grace", "Henry",
                "Ivy",   "Jack", "Kate", "Leo",  "Mia",  "Nick",   "Olivia", "Paul",
                "Quinn", "Rose", "Sam",  "Tom",  "Uma",  "Victor", "Wendy", "Zoe"},
      .verbs =
          {
              {"reads", {"book", "letter", "map"}},
              {"writes", {"book", "letter", "song"}},
              {"sings", {"song"}},
              {"eats", {"apple", "cake", "egg", "orange", "sandwich", "soup"}},
              {"cooks", {"egg", "soup", "cake"}},
              {"drives", {"car", "truck", "boat", "train"}},
              {"rides", {"bike", "horse", "boat", "train"}},
              {"paints", {"picture", "house", "fence", "window", "bike", "boat"}},
              {"draws", {"picture", "map", "house", "tree", "flower", "cat", "dog", "horse"}},
              {"builds", {"house", "fence", "boat", "kite"}},
              {"fixes", {"car", "bike", "truck", "fence", "window", "umbrella", "drum"}},
              {"washes", {"car", "dog", "window", "apple", "bike", "truck"}},
              {"kicks", {"ball"}},
              {"throws", {"ball", "apple", "orange"}},
              {"flies", {"kite"}},
              {"plays", {"drum", "ball", "puzzle", "song"}},
              {"finds", {"book", "ball", "map", "umbrella", "cat", "dog", "egg", "kite"}},
              {"feeds", {"dog", "cat", "horse"}},
              {"plants", {"tree", "flower", "garden"}},
              {"opens", {"book", "letter", "window", "umbrella"}},
          },
      .objects = {{"a", "book"},    {"a", "letter"},     {"the", "map"},   {"a", "song"},     {"an", "apple"},
                  {"a", "cake"},    {"an", "egg"},       {"an", "orange"}, {"a", "sandwich"}, {"the", "soup"},
                  {"a", "car"},     {"a", "bike"},       {"a", "boat"},    {"a", "truck"},    {"the", "train"},
                  {"a", "horse"},   {"the", "ball"},     {"a", "kite"},    {"a", "drum"},     {"a", "puzzle"},
                  {"a", "picture"}, {"a", "house"},      {"the", "fence"}, {"the", "window"}, {"a", "flower"},
                  {"a", "tree"},    {"the", "dog"},      {"a", "cat"},     {"the", "garden"}, {"an", "umbrella"}},
  };
  return vocabulary;
}

namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_lower(c); });
  return out;
}

size_t object_index(std::string_view noun) {
  const auto& objects = spo_vocabulary().objects;
  const auto it = std::find_if(objects.begin(), objects.end(), [&](const SpoObject& o) { return o.noun == noun; });
  SSM_CHECK(it != objects.end(), "spo vocabulary: a verb names the object '", noun, "' missing from the objects");
  return static_cast<size_t>(it - objects.begin());
}

// A draw in [0, n). The modulo's bias is below n / 2^64, far too small to matter here.
size_t uniform_below(Generator& rng, size_t n) { return static_cast<size_t>(rng.next_u64() % n); }

// FNV-1a over the bytes, then the splitmix64 finaliser so that every output bit depends on every input byte.
uint64_t stable_hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A group's body "a, b, c" (the text between its parentheses) as a triple, if it is one.
std::optional<Triple> parse_group(std::string_view body) {
  std::string fields[3];
  for (int i = 0; i < 3; ++i) {
    const size_t comma = body.find(',');
    if ((comma == std::string_view::npos) != (i == 2)) return std::nullopt;  // too few or too many fields
    const std::string_view field = trim(body.substr(0, comma));
    if (field.empty()) return std::nullopt;
    fields[i] = ascii_lower(field);
    if (comma != std::string_view::npos) body.remove_prefix(comma + 1);
  }
  return Triple{std::move(fields[0]), std::move(fields[1]), std::move(fields[2])};
}

}  // namespace

SpoGenerator::SpoGenerator(uint64_t seed, SpoSplit split, int min_facts, int max_facts)
    : rng_(seed), min_facts_(min_facts), max_facts_(max_facts) {
  const SpoVocabulary& vocabulary = spo_vocabulary();
  SSM_CHECK(1 <= min_facts && min_facts <= max_facts && static_cast<size_t>(max_facts) <= vocabulary.names.size(),
            "spo data: need 1 <= min_facts <= max_facts <= ", vocabulary.names.size(),
            " (one name per fact), got min_facts = ", min_facts, ", max_facts = ", max_facts);
  for (const std::string_view name : vocabulary.names) {
    std::vector<Fact>& facts = facts_by_name_.emplace_back();
    const std::string subject = ascii_lower(name);
    for (size_t v = 0; v < vocabulary.verbs.size(); ++v) {
      const SpoVerb& verb = vocabulary.verbs[v];
      for (const std::string_view noun : verb.objects) {
        const bool heldout = is_heldout_combination({subject, std::string(noun), std::string(verb.word)});
        if (heldout == (split == SpoSplit::Heldout)) facts.push_back({v, object_index(noun)});
      }
    }
    SSM_CHECK(!facts.empty(), "spo vocabulary: the name '", name, "' has no combination in the ",
              split == SpoSplit::Heldout ? "held-out" : "training", " split");
  }
}

SpoExample SpoGenerator::next() {
  const SpoVocabulary& vocabulary = spo_vocabulary();
  const size_t count =
      static_cast<size_t>(min_facts_) + uniform_below(rng_, static_cast<size_t>(max_facts_ - min_facts_ + 1));
  // Distinct subjects: the first `count` places of a partial Fisher–Yates shuffle of the names.
  std::vector<size_t> names(vocabulary.names.size());
  std::iota(names.begin(), names.end(), size_t{0});
  for (size_t i = 0; i < count; ++i) std::swap(names[i], names[i + uniform_below(rng_, names.size() - i)]);

  SpoExample example;
  for (size_t i = 0; i < count; ++i) {
    const std::vector<Fact>& choices = facts_by_name_[names[i]];
    const Fact fact = choices[uniform_below(rng_, choices.size())];
    const std::string_view name = vocabulary.names[names[i]];
    const std::string_view verb = vocabulary.verbs[fact.verb].word;
    const SpoObject& object = vocabulary.objects[fact.object];

    if (i > 0) example.sentence += i + 1 == count ? " and " : ", ";
    example.sentence.append(name).append(" ").append(verb).append(" ");
    example.sentence.append(object.article).append(" ").append(object.noun);
    example.triples.push_back({ascii_lower(name), std::string(object.noun), std::string(verb)});
  }
  example.sentence += '.';
  example.target = format_triples(example.triples);
  return example;
}

bool is_heldout_combination(const Triple& t) {
  // The unit separator keeps ("ab", "c") and ("a", "bc") apart.
  return stable_hash(t.subject + '\x1f' + t.predicate + '\x1f' + t.object) % 5 == 0;
}

std::string spo_prompt(const std::string& sentence) { return sentence + "\n"; }

std::string format_triples(const std::vector<Triple>& triples) {
  std::string out = "[";
  for (size_t i = 0; i < triples.size(); ++i) {
    if (i > 0) out += ", ";
    out += "(" + triples[i].subject + ", " + triples[i].object + ", " + triples[i].predicate + ")";
  }
  return out + "]";
}

std::vector<Triple> parse_triples(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  std::vector<Triple> triples;
  size_t open = text.find('(');
  while (open != std::string_view::npos) {
    const size_t next = text.find_first_of("()", open + 1);
    if (next == std::string_view::npos) break;  // never closed
    if (text[next] == '(') {                    // nested: the inner group is the candidate
      open = next;
      continue;
    }
    if (auto triple = parse_group(text.substr(open + 1, next - open - 1))) triples.push_back(std::move(*triple));
    open = text.find('(', next + 1);
  }
  return triples;
}

bool same_fact_set(const std::vector<Triple>& a, const std::vector<Triple>& b) {
  const auto as_set = [](std::vector<Triple> ts) {
    std::sort(ts.begin(), ts.end());
    ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
    return ts;
  };
  return as_set(a) == as_set(b);
}

}  // namespace ssm::tasks
