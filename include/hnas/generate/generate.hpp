// SPDX-License-Identifier: Apache-2.0
// `hnas generate`: text from a pre-training checkpoint. The prompt is run once (prefill)
// and the continuation decoded one token at a time with a KV cache for the attention
// layers only (the MLP layers keep nothing); greedy, or temperature and top-k sampling.
// Prints the tokens (and the text of a byte-level vocabulary), the prefill time, the
// per-token decode latency and the KV-cache bytes per token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hnas::generate {

struct GenerateOptions {
  std::string checkpoint;              ///< a checkpoint file, or a directory (its `latest`)
  std::string prompt;                  ///< text: its bytes are the tokens (byte-level vocabularies)
  std::vector<int64_t> prompt_tokens;  ///< or the token ids themselves
  int64_t max_new_tokens = 64;
  double temperature = 0;  ///< 0: greedy
  int64_t top_k = 0;       ///< sample among the k most likely (0: all)
  uint64_t seed = 0;
  int64_t repeats = 1;      ///< generate this many times; timings are the mean (benchmarks)
  std::string logits_path;  ///< when set: the prompt's logits and the tokens as HDF5 (tests)
  /// With no checkpoint: every model of RUN_DIR/checkpoints (winner first, baseline last)
  /// is timed and the comparison written to /inference of RUN_DIR/results.h5.
  std::string run_dir;
};

/// Generates on this rank (under mpirun every rank does the same work; rank 0 prints and,
/// when `writes`, writes options.logits_path or /inference). Returns 0. Throws ConfigError (exit 2) for
/// a missing or damaged checkpoint, an empty prompt or one with tokens outside the
/// vocabulary.
int run_generate(const GenerateOptions& options, int gpu, bool writes);

/// Whether RUN_DIR/results.h5 has a finished /inference measured on the models /pretrain
/// holds now (names and identities). Rank-local: the rank that reads the file.
bool inference_complete(const std::string& run_dir);

}  // namespace hnas::generate
