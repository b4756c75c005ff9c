// SPDX-License-Identifier: Apache-2.0
#include "hnas/generate/generate.hpp"

#include <torch/torch.h>

#include <algorithm>
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
  // The fused CPU kernels (RMSNorm, SwiGLU): fewer operators per decoded token (measured 3-17% faster, paired).
  o.kernels = device.is_cpu() ? model::Kernels::Fused : model::Kernels::Reference;
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

// One prompt generated `repeats` times, timed.
struct Generation {
  std::vector<int64_t> prompt, tokens;
  torch::Tensor prompt_logits;  // [T, V] float32, CPU
  double prefill_seconds = 0;   // mean
  double decode_seconds_per_token = 0;
  int64_t cache_bytes_per_token = 0;
};

Generation generate_timed(model::HybridModel& model, const GenerateOptions& o, const torch::Device& device) {
  const auto& shape = model->options().shape;
  Generation g;
  g.prompt = o.prompt_tokens;
  for (unsigned char c : o.prompt) g.prompt.push_back(c);
  HNAS_CHECK(!g.prompt.empty(), ConfigError, "the prompt is empty: give --prompt TEXT or --generate.prompt_tokens IDS");
  for (auto t : g.prompt)
    HNAS_CHECK(t >= 0 && t < shape.vocab_size, ConfigError,
               "prompt token " << t << " is outside the model's vocabulary of " << shape.vocab_size);
  // Inference mode, not just no-grad: views of the weights then skip autograd's view
  // bookkeeping, a tenth of the decode time at batch 1.
  c10::InferenceMode inference;
  auto generator = at::detail::createCPUGenerator(o.seed);
  const int64_t repeats = std::max<int64_t>(o.repeats, 1);
  double prefill = 0, decode = 0;
  int64_t decoded = 0;
  for (int64_t r = 0; r < repeats; ++r) {
    g.tokens.clear();
    auto cache = model->make_kv_cache(1, static_cast<int64_t>(g.prompt.size()) + o.max_new_tokens);
    g.cache_bytes_per_token = cache.bytes_per_token();
    const auto input = torch::tensor(g.prompt, torch::kInt64).view({1, -1}).to(device);
    auto start = Clock::now();
    auto logits = model->forward(input, cache);
    int64_t next = sample(logits[0][-1], o, generator);
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    prefill += seconds_since(start);
    if (r == 0) g.prompt_logits = logits[0].to(torch::kCPU, torch::kFloat32);
    g.tokens.push_back(next);
    start = Clock::now();
    for (int64_t i = 1; i < o.max_new_tokens; ++i) {
      const auto token = torch::full({1, 1}, next, torch::TensorOptions().dtype(torch::kInt64).device(device));
      next = sample(model->forward(token, cache)[0][-1], o, generator);
      g.tokens.push_back(next);
      ++decoded;
    }
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    decode += seconds_since(start);
  }
  g.prefill_seconds = prefill / static_cast<double>(repeats);
  g.decode_seconds_per_token = decoded > 0 ? decode / static_cast<double>(decoded) : 0.0;
  return g;
}

void print(const std::string& path, const model::HybridModel& model, const Generation& g) {
  const auto& shape = model->options().shape;
  log::info("generate: " + path + " (" + model->options().genome.to_string() + ", " + shape.describe() + ")");
  std::string ids;
  for (auto t : g.tokens) ids += (ids.empty() ? "" : " ") + std::to_string(t);
  log::info("generate: tokens " + ids);
  if (shape.vocab_size <= 257)
    log::info("generate: text \"" + printable_text(g.prompt) + "|" + printable_text(g.tokens) + "\"");
  log::info(log::format(
      "generate: prefill %zu tokens in %.3f ms; decode %.3f ms/token over %zu tokens; KV cache %ld bytes/token "
      "(%ld in bf16)",
      g.prompt.size(), 1e3 * g.prefill_seconds, 1e3 * g.decode_seconds_per_token, g.tokens.size() - 1,
      static_cast<long>(g.cache_bytes_per_token), static_cast<long>(g.cache_bytes_per_token / 2)));
}

// The models of a run directory's checkpoints: winner(s) first, the baseline last.
std::vector<std::string> checkpointed_models(const std::string& run_dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(run_dir + "/checkpoints", error), end; !error && it != end;
       it.increment(error))
    if (it->is_directory()) names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    const auto rank = [](const std::string& n) { return n == "winner" ? 0 : n == "baseline" ? 2 : 1; };
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  HNAS_CHECK(!names.empty(), ConfigError,
             "no checkpoints in " << printable(run_dir) << "/checkpoints; run hnas pretrain there first");
  return names;
}

// What /inference was measured on: every pre-trained model's name and identity, so that a
// rerun of the pipeline knows whether the models changed since.
std::string pretrain_identity(hid_t file) {
  std::string identity;
  if (H5Lexists(file, "pretrain", H5P_DEFAULT) <= 0) return identity;
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/pretrain", H5P_DEFAULT)));
  for (const auto& name : io::link_names(group.get())) {
    if (name == "summary" || name == "tokenizer") continue;  // not models
    const io::H5Group model(HNAS_CHECK_H5(H5Gopen2(group.get(), name.c_str(), H5P_DEFAULT)));
    identity += name + "=" + io::read_string_attribute(model.get(), "identity_fingerprint") + ";";
  }
  return identity;
}

// /inference: one row per model, and each model's ratios to the last one (the baseline).
void write_inference(const std::string& run_dir, const std::vector<std::string>& names,
                     const std::vector<Generation>& runs, const std::vector<std::string>& archs) {
  io::Table t;
  t.columns = {{"model", io::ColumnType::String, 1, "checkpoints/<model>"},
               {"arch", io::ColumnType::String, 1, "one letter per layer"},
               {"prompt_tokens", io::ColumnType::Int64, 0, "tokens of the prompt (prefill)"},
               {"new_tokens", io::ColumnType::Int64, 0, "tokens generated"},
               {"prefill_ms", io::ColumnType::Float64, 0, "prefill time (ms)"},
               {"decode_ms_per_token", io::ColumnType::Float64, 0, "mean decode latency per token, batch 1 (ms)"},
               {"kv_cache_bytes_per_token", io::ColumnType::Int64, 0, "KV cache per token in the model's dtype"},
               {"decode_ratio_to_baseline", io::ColumnType::Float64, 0, "decode latency over the last model's"},
               {"kv_ratio_to_baseline", io::ColumnType::Float64, 0, "KV cache bytes over the last model's"}};
  const auto& base = runs.back();
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& g = runs[i];
    t.rows.push_back(
        {names[i], archs[i], static_cast<int64_t>(g.prompt.size()), static_cast<int64_t>(g.tokens.size()),
         1e3 * g.prefill_seconds, 1e3 * g.decode_seconds_per_token, g.cache_bytes_per_token,
         base.decode_seconds_per_token > 0 ? g.decode_seconds_per_token / base.decode_seconds_per_token : 0.0,
         base.cache_bytes_per_token > 0
             ? static_cast<double>(g.cache_bytes_per_token) / static_cast<double>(base.cache_bytes_per_token)
             : 0.0});
  }
  io::fit_string_columns(t);
  io::update_file_atomically(run_dir + "/results.h5", {"/inference"}, [&](hid_t file) {
    io::write_table(file, "/inference/models", t,
                    "inference of every checkpointed model at batch 1 with a KV cache (hnas generate --run-dir)");
    const io::H5Group g(HNAS_CHECK_H5(H5Gopen2(file, "/inference", H5P_DEFAULT)));
    io::write_string_attribute(g.get(), "doc", "prefill time, decode latency per token and KV-cache bytes per token");
    io::write_string_attribute(g.get(), "pretrain_identity", pretrain_identity(file));
    io::write_string_attribute(g.get(), "status", "completed");
  });
}

}  // namespace

bool inference_complete(const std::string& run_dir) {
  const std::string path = run_dir + "/results.h5";
  std::error_code missing;
  if (!std::filesystem::exists(path, missing)) return false;
  const auto file = io::open_file_read_only(path);
  if (H5Lexists(file.get(), "inference", H5P_DEFAULT) <= 0) return false;
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file.get(), "/inference", H5P_DEFAULT)));
  return io::has_attribute(group.get(), "status") && io::has_attribute(group.get(), "pretrain_identity") &&
         io::read_string_attribute(group.get(), "status") == "completed" &&
         io::read_string_attribute(group.get(), "pretrain_identity") == pretrain_identity(file.get());
}

int run_generate(const GenerateOptions& o, int gpu, bool writes) {
  const torch::Device device = gpu >= 0 ? torch::Device(torch::kCUDA, gpu) : torch::Device(torch::kCPU);
  if (!o.run_dir.empty() && o.checkpoint.empty()) {  // every model of the run directory, into /inference
    const auto names = checkpointed_models(o.run_dir);
    std::vector<Generation> runs;
    std::vector<std::string> archs;
    for (const auto& name : names) {
      const std::string path = checkpoint_file(o.run_dir + "/checkpoints/" + name);
      auto model = load_model(path, device);
      runs.push_back(generate_timed(model, o, device));
      archs.push_back(model->options().genome.to_string());
      print(path, model, runs.back());
    }
    if (writes) {
      write_inference(o.run_dir, names, runs, archs);
      log::info("generate: written to " + o.run_dir + "/results.h5:/inference");
    }
    return kExitOk;
  }
  const std::string path = checkpoint_file(o.checkpoint);
  auto model = load_model(path, device);
  const auto g = generate_timed(model, o, device);
  print(path, model, g);
  if (writes && !o.logits_path.empty()) {
    io::write_file_atomically(o.logits_path, [&](hid_t file) {
      std::vector<float> values(g.prompt_logits.data_ptr<float>(),
                                g.prompt_logits.data_ptr<float>() + g.prompt_logits.numel());
      auto logits = io::write_dataset_1d(file, "/prompt_logits", values);
      io::write_int_attribute(logits.get(), "rows", g.prompt_logits.size(0));
      io::write_int_attribute(logits.get(), "vocab_size", g.prompt_logits.size(1));
      io::write_dataset_1d(file, "/prompt", g.prompt);
      io::write_dataset_1d(file, "/generated", g.tokens);
    });
  }
  return kExitOk;
}

}  // namespace hnas::generate
