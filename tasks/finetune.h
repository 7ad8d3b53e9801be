// tasks/finetune.h — fine-tuning on subject–predicate–object extraction (tasks/spo.h).
//
// Each training sequence is  spo_prompt(sentence) · target · end-of-text,  e.g.
//   "Alice reads a book and Bob drives a car.\n[(alice, book, reads), (bob, car, drives)]<eos>"
// and the loss is taken only where the next token belongs to the target (or is the closing end-of-text):
// the model is not asked to predict the sentence, only its facts. Sequences of a batch are padded to the
// longest (pad inputs, ignored targets) and cut at seq_len.
// Evaluation uses held-out combinations (SpoSplit::Heldout): the validation loss on their targets and the
// exact-match accuracy of greedy answers (parse_triples, same_fact_set).
#pragma once
#include "tasks/spo.h"
#include "tasks/train_loop.h"

namespace ssm::tasks {

// One batch of examples as training sequences with the loss on target tokens only.
Batch spo_batch(const std::vector<SpoExample>& examples, const Tokenizer& tokenizer, int64_t seq_len);

// The model's greedy answer to a sentence: generated after spo_prompt(sentence) until end-of-text or a line
// break (at most max_tokens), decoded.
std::string spo_answer(const MambaLM& model, const Tokenizer& tokenizer, const std::string& sentence,
                       int64_t max_tokens = 160);

// Validation on `examples`: target loss, bits per byte, exact match (extra["exact_match"]), a few answers.
EvalResult evaluate_spo(const MambaLM& model, const Tokenizer& tokenizer, const std::vector<SpoExample>& examples,
                        int64_t batch, int64_t seq_len);

// The whole task: start from the init checkpoint (args.init_checkpoint), train on generated examples.
TrainOutcome run_finetune(const ExperimentSpec& spec, const TrainOptions& options);

}  // namespace ssm::tasks
