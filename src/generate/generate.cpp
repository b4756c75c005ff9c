// SPDX-License-Identifier: Apache-2.0
#include "hnas/generate/generate.hpp"

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/files.hpp"
#include "hnas/core/log.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/model/hybrid_model.hpp"
#include "hnas/pretrain/checkpoint.hpp"

namespace hnas::generate {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The checkpoint file `path` names: itself, or the one its directory's `latest` names.
std::string checkpoint_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_directory(path, error)) {
    require_readable_file(path, "checkpoint");
    return path;
  }
  std::ifstream pointer(path + "/latest");
  std::string name;
  HNAS_CHECK(pointer >> name, ConfigError,
             "checkpoint directory " << printable(path) << " has no `latest` pointer (is it a checkpoint directory?)");
  return path + "/" + name;
}

model::HybridModel load_model(const std::string& path, const torch::Device& device) {
  pretrain::Checkpoint c;
  try {
    c = pretrain::read_checkpoint(path);
  } catch (const InputError& e) {
    throw ConfigError(e.what());
  }
  model::HybridModelOptions o;
  o.genome = arch::Genome::parse(c.arch);
  o.shape = c.shape;
  o.kernels = model::Kernels::Reference;
  model::HybridModel model(o);
  std::map<std::string, const pretrain::NamedTensor*> weights;
  for (const auto& w : c.weights) weights[w.name] = &w;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const auto it = weights.find(item.key());
    HNAS_CHECK(it != weights.end(), ConfigError, path << " has no tensor " << item.key());
    item.value().copy_(it->second->tensor);
  }
  model->to(device);
  model->eval();
  return model;
}

int64_t sample(const torch::Tensor& logits, const GenerateOptions& o, at::Generator& generator) {
  if (o.temperature <= 0) return logits.argmax(-1).item<int64_t>();
  auto scaled = logits.to(torch::kFloat32) / o.temperature;
  if (o.top_k > 0 && o.top_k < scaled.size(-1)) {
    const auto kth = std::get<0>(scaled.topk(o.top_k)).min();
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
  }
  return torch::multinomial(torch::softmax(scaled, -1).to(torch::kCPU), 1, false, generator).item<int64_t>();
}

std::string printable_text(const std::vector<int64_t>& tokens) {
  std::string out;
  for (auto t : tokens) out += (t >= 32 && t < 127) || t == '\n' ? static_cast<char>(t) : '?';
  return out;
}

}  // namespace

int run_generate(const GenerateOptions& o, int gpu, bool writes) {
  const torch::Device device = gpu >= 0 ? torch::Device(torch::kCUDA, gpu) : torch::Device(torch::kCPU);
  const std::string path = checkpoint_file(o.checkpoint);
  auto model = load_model(path, device);
  const auto& shape = model->options().shape;
  std::vector<int64_t> prompt = o.prompt_tokens;
  for (unsigned char c : o.prompt) prompt.push_back(c);
  HNAS_CHECK(!prompt.empty(), ConfigError, "the prompt is empty: give --prompt TEXT or --generate.prompt_tokens IDS");
  for (auto t : prompt)
    HNAS_CHECK(t >= 0 && t < shape.vocab_size, ConfigError,
               "prompt token " << t << " is outside the model's vocabulary of " << shape.vocab_size);

  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(o.seed);
  std::vector<int64_t> generated;
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t decoded = 0, cache_bytes = 0;
  torch::Tensor prompt_logits;
  for (int64_t r = 0; r < std::max<int64_t>(o.repeats, 1); ++r) {
    generated.clear();
    auto cache = model->make_kv_cache(1, static_cast<int64_t>(prompt.size()) + o.max_new_tokens);
    cache_bytes = cache.bytes_per_token();
    const auto input = torch::tensor(prompt, torch::kInt64).view({1, -1}).to(device);
    auto start = Clock::now();
    auto logits = model->forward(input, cache);
    int64_t next = sample(logits[0][-1], o, generator);
    if (device.is_cuda()) torch::cuda::synchronize(gpu);
    prefill_seconds += seconds_since(start);
    if (r == 0) prompt_logits = logits[0].to(torch::kCPU, torch::kFloat32);
    generated.push_back(next);
    start = Clock::now();
    for (int64_t i = 1; i < o.max_new_tokens; ++i) {
      const auto token = torch::full({1, 1}, next, torch::TensorOptions().dtype(torch::kInt64).device(device));
      next = sample(model->forward(token, cache)[0][-1], o, generator);
      generated.push_back(next);
      ++decoded;
    }
    if (device.is_cuda()) torch::cuda::synchronize(gpu);
    decode_seconds += seconds_since(start);
  }
  const double repeats = static_cast<double>(std::max<int64_t>(o.repeats, 1));
  log::info("generate: " + path + " (" + model->options().genome.to_string() + ", " + shape.describe() + ")");
  std::string ids;
  for (auto t : generated) ids += (ids.empty() ? "" : " ") + std::to_string(t);
  log::info("generate: tokens " + ids);
  if (shape.vocab_size <= 257)
    log::info("generate: text \"" + printable_text(prompt) + "|" + printable_text(generated) + "\"");
  log::info(log::format(
      "generate: prefill %zu tokens in %.3f ms; decode %.3f ms/token over %ld tokens; KV cache %ld bytes/token "
      "(%ld in bf16)",
      prompt.size(), 1e3 * prefill_seconds / repeats,
      decoded > 0 ? 1e3 * decode_seconds / static_cast<double>(decoded) : 0.0,
      static_cast<long>(decoded / static_cast<int64_t>(repeats)), static_cast<long>(cache_bytes),
      static_cast<long>(cache_bytes / 2)));
  if (writes && !o.logits_path.empty()) {
    io::write_file_atomically(o.logits_path, [&](hid_t file) {
      std::vector<float> values(prompt_logits.data_ptr<float>(),
                                prompt_logits.data_ptr<float>() + prompt_logits.numel());
      auto logits = io::write_dataset_1d(file, "/prompt_logits", values);
      io::write_int_attribute(logits.get(), "rows", prompt_logits.size(0));
      io::write_int_attribute(logits.get(), "vocab_size", prompt_logits.size(1));
      io::write_dataset_1d(file, "/prompt", prompt);
      io::write_dataset_1d(file, "/generated", generated);
    });
  }
  return kExitOk;
}

}  // namespace hnas::generate
