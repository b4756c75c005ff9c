// SPDX-License-Identifier: Apache-2.0
#include "hnas/extrapolate/extrapolate_stage.hpp"

#include <filesystem>
#include <sstream>

#include "hnas/aggregate/aggregate_stage.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/hash.hpp"
#include "hnas/core/log.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/io/run_directory.hpp"

namespace hnas::extrapolate {
namespace {

const char* kExtrapolateDoc =
    "the Extrapolator: the aggregated (or given) architecture scaled to a target size by stacking or stretching, "
    "next to the target's Llama baseline; sizes are non-embedding parameters at the target width";

std::string results_path(const std::string& run_dir) { return run_dir + "/results.h5"; }

// The architecture to extrapolate and where it came from.
struct Source {
  arch::Genome genome;
  std::string from;
};

Source find_source(const ExtrapolateOptions& o, const std::string& run_dir) {
  if (o.arch) return {*o.arch, "--arch"};
  HNAS_CHECK(!run_dir.empty(), ConfigError,
             "nothing to extrapolate: give --arch ARCH, or --run-dir DIR of an aggregated search");
  const std::string path = results_path(run_dir);
  std::error_code missing;
  HNAS_CHECK(std::filesystem::exists(path, missing), ConfigError,
             "no search in " << run_dir << " (" << path
                             << " does not exist); run hnas search and hnas aggregate there first, or give --arch");
  const auto recorded = aggregate::read_recorded_aggregate(path);
  // Named within the run directory: the record stays true when the directory is moved.
  return {recorded.genome, "/aggregate (" + recorded.method + (recorded.partial ? ", of a partial search" : "") + ")"};
}

std::string describe_target(const TargetShape& t) {
  const auto& s = t.shape;
  return log::format(
      "%s: %ld blocks, d_model %ld, MLP %ld, heads %ld/%ld x %ld, vocab %ld, %s, RoPE theta %g, "
      "context %ld",
      t.name.c_str(), static_cast<long>(t.blocks), static_cast<long>(s.d_model), static_cast<long>(s.mlp_hidden),
      static_cast<long>(s.num_heads), static_cast<long>(s.num_kv_heads), static_cast<long>(s.head_dim),
      static_cast<long>(s.vocab_size), s.tie_embeddings ? "tied embeddings" : "untied embeddings", s.rope_theta,
      static_cast<long>(t.context_length));
}

// The text whose hash decides whether /extrapolate is current.
std::string input_text(const ExtrapolateOptions& o, const Source& source) {
  std::ostringstream out;
  out << source.genome.to_string() << " from " << source.from << " method " << static_cast<int>(o.method) << " "
      << describe_target(o.target) << " eps " << log::format("%.10g", o.target.shape.norm_eps);
  return out.str();
}

std::string millions(double n) { return log::format("%.1fM", n / 1e6); }

void print(const Extrapolation& x, const Source& source, const TargetShape& target, const ArchitectureCost& winner,
           const ArchitectureCost& baseline, const arch::Genome& baseline_genome) {
  log::info("extrapolate: " + x.source.to_string() + " (" + x.source.to_run_length() + ", from " + source.from +
            ") to " + describe_target(target));
  std::string how;
  switch (x.method) {
    case Method::Stack:
      how = log::format("stack: %ld copies", static_cast<long>(x.copies));
      if (x.remainder_fraction > 0) how += log::format(" + a copy stretched by %.4f", x.remainder_fraction);
      break;
    case Method::Stretch:
      how = log::format("stretch: every run x %.4f, rounded up", x.scale_factor);
      break;
    case Method::Width:
      how = "width only: the source already has the target's depth";
      break;
  }
  log::info(log::format("extrapolate: m = %s, M = %s non-embedding parameters at the target width, M/m = %.4f; %s",
                        millions(static_cast<double>(x.source_size)).c_str(),
                        millions(static_cast<double>(x.target_size)).c_str(), x.scale_factor, how.c_str()));
  log::info("extrapolate: winner   " + x.result.to_string());
  log::info("extrapolate: baseline " + baseline_genome.to_string());
  log::info("extrapolate: winner run-length " + x.result.to_run_length() + "; Megatron-LM hybrid_override_pattern \"" +
            megatron_pattern(x.result) + "\"");
  log::info(log::format("extrapolate: %-28s %16s %16s %8s", "", "winner", "baseline", "ratio"));
  const auto row = [](const char* what, double a, double b, const char* format) {
    log::info(log::format("extrapolate: %-28s %16s %16s %8.3f", what, log::format(format, a).c_str(),
                          log::format(format, b).c_str(), b != 0 ? a / b : 0.0));
  };
  row("layers", static_cast<double>(winner.layers), static_cast<double>(baseline.layers), "%.0f");
  row("attention layers", static_cast<double>(winner.attention_layers), static_cast<double>(baseline.attention_layers),
      "%.0f");
  row("MLP layers", static_cast<double>(winner.mlp_layers), static_cast<double>(baseline.mlp_layers), "%.0f");
  row("parameters", static_cast<double>(winner.parameters.total), static_cast<double>(baseline.parameters.total),
      "%.0f");
  row("non-embedding parameters", static_cast<double>(winner.parameters.non_embedding),
      static_cast<double>(baseline.parameters.non_embedding), "%.0f");
  row("KV cache bytes/token bf16", static_cast<double>(winner.kv_cache_bytes_per_token_bf16),
      static_cast<double>(baseline.kv_cache_bytes_per_token_bf16), "%.0f");
  row("KV cache bytes/token fp32", static_cast<double>(winner.kv_cache_bytes_per_token_fp32),
      static_cast<double>(baseline.kv_cache_bytes_per_token_fp32), "%.0f");
  row(log::format("forward FLOPs/token @%ld", static_cast<long>(target.context_length)).c_str(),
      winner.forward_flops_per_token, baseline.forward_flops_per_token, "%.4g");
  const auto ours = static_cast<double>(winner.kv_cache_bytes_per_token_bf16);
  const auto theirs = static_cast<double>(baseline.kv_cache_bytes_per_token_bf16);
  if (ours > 0 && ours != theirs)
    log::info(log::format("extrapolate: KV cache per token %.2fx %s than the baseline's",
                          ours < theirs ? theirs / ours : ours / theirs, ours < theirs ? "smaller" : "larger"));
}

io::Table models_table(const Extrapolation& x, const Source& source, const ArchitectureCost& winner,
                       const ArchitectureCost& baseline, const arch::Genome& baseline_genome) {
  io::Table t;
  const size_t width = std::max(x.result.size(), baseline_genome.size());
  const size_t from = std::max<size_t>(source.from.size(), 16);
  t.columns = {{"model", io::ColumnType::String, 8, "winner or baseline"},
               {"arch", io::ColumnType::String, width, "one letter per layer (A attention, M MLP)"},
               {"arch_run_length", io::ColumnType::String, width, "run-length form"},
               {"hybrid_override_pattern", io::ColumnType::String, width, "Megatron-LM: * attention, - MLP"},
               {"layers", io::ColumnType::Int64, 0, "primitive layers"},
               {"attention_layers", io::ColumnType::Int64, 0, "attention layers"},
               {"mlp_layers", io::ColumnType::Int64, 0, "MLP layers"},
               {"parameters", io::ColumnType::Int64, 0, "total parameters"},
               {"non_embedding_parameters", io::ColumnType::Int64, 0, "parameters outside embedding and head"},
               {"kv_cache_bytes_per_token_bf16", io::ColumnType::Int64, 0, "bytes (K and V, every attention layer)"},
               {"kv_cache_bytes_per_token_fp32", io::ColumnType::Int64, 0, "bytes (K and V, every attention layer)"},
               {"forward_flops_per_token", io::ColumnType::Float64, 0, "FLOPs at the target context length"},
               {"source_arch", io::ColumnType::String, std::max<size_t>(x.source.size(), 6), "what was scaled"},
               {"source", io::ColumnType::String, from, "where the source came from"},
               {"method", io::ColumnType::String, 8, "stack, stretch, width, or llama for the baseline"},
               {"scale_factor", io::ColumnType::Float64, 0, "M/m: target over source non-embedding size"},
               {"copies", io::ColumnType::Int64, 0, "stacking: whole copies of the source"},
               {"remainder_fraction", io::ColumnType::Float64, 0, "stacking: stretch factor of the appended copy"}};
  const auto row = [&](const char* model, const arch::Genome& g, const ArchitectureCost& c) {
    return std::vector<io::Cell>{std::string(model),
                                 g.to_string(),
                                 g.to_run_length(),
                                 megatron_pattern(g),
                                 c.layers,
                                 c.attention_layers,
                                 c.mlp_layers,
                                 c.parameters.total,
                                 c.parameters.non_embedding,
                                 c.kv_cache_bytes_per_token_bf16,
                                 c.kv_cache_bytes_per_token_fp32,
                                 c.forward_flops_per_token};
  };
  auto w = row("winner", x.result, winner);
  for (io::Cell cell :
       {io::Cell{x.source.to_string()}, io::Cell{source.from}, io::Cell{std::string(method_name(x.method))},
        io::Cell{x.scale_factor}, io::Cell{x.copies}, io::Cell{x.remainder_fraction}})
    w.push_back(std::move(cell));
  auto b = row("baseline", baseline_genome, baseline);
  for (io::Cell cell : {io::Cell{baseline_genome.to_string()}, io::Cell{std::string("the target's Llama layout")},
                        io::Cell{std::string("llama")}, io::Cell{1.0}, io::Cell{int64_t{1}}, io::Cell{0.0}})
    b.push_back(std::move(cell));
  t.rows = {std::move(w), std::move(b)};
  io::fit_string_columns(t);
  return t;
}

io::Table target_table(const TargetShape& target) {
  const auto& s = target.shape;
  io::Table t;
  t.columns = {{"name", io::ColumnType::String, std::max<size_t>(target.name.size(), 1), "preset or custom"},
               {"blocks", io::ColumnType::Int64, 0, "baseline blocks (one attention + one MLP each)"},
               {"d_model", io::ColumnType::Int64, 0, "residual width"},
               {"mlp_hidden", io::ColumnType::Int64, 0, "SwiGLU inner width"},
               {"heads", io::ColumnType::Int64, 0, "query heads"},
               {"kv_heads", io::ColumnType::Int64, 0, "key/value heads"},
               {"head_dim", io::ColumnType::Int64, 0, "width of a head"},
               {"vocab_size", io::ColumnType::Int64, 0, "vocabulary"},
               {"rope_theta", io::ColumnType::Float64, 0, "rotary base"},
               {"tie_embeddings", io::ColumnType::Int64, 0, "1: head shares the embedding"},
               {"context_length", io::ColumnType::Int64, 0, "tokens, for FLOPs per token"},
               {"norm_eps", io::ColumnType::Float64, 0, "RMSNorm epsilon"}};
  t.rows.push_back({target.name, target.blocks, s.d_model, s.mlp_hidden, s.num_heads, s.num_kv_heads, s.head_dim,
                    s.vocab_size, s.rope_theta, int64_t{s.tie_embeddings}, target.context_length, s.norm_eps});
  io::fit_string_columns(t);
  return t;
}

void write(const std::string& path, const Extrapolation& x, const Source& source, const TargetShape& target,
           const ArchitectureCost& winner, const ArchitectureCost& baseline, const arch::Genome& baseline_genome,
           const std::string& fingerprint, const std::string& config) {
  io::update_file_atomically(path, {"/extrapolate"}, [&](hid_t file) {
    io::write_table(file, "/extrapolate/models", models_table(x, source, winner, baseline, baseline_genome),
                    "the extrapolated winner and the target's baseline, with their lineage and costs");
    io::write_table(file, "/extrapolate/target", target_table(target), "the target's dimensions");
    io::write_string_dataset(file, "/extrapolate/config", config,
                             "the effective configuration of hnas extrapolate (INI text)");
    io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/extrapolate", H5P_DEFAULT)));
    const hid_t g = group.get();
    io::write_string_attribute(g, "doc", kExtrapolateDoc);
    io::write_string_attribute(g, "arch", x.result.to_string());
    io::write_string_attribute(g, "hybrid_override_pattern", megatron_pattern(x.result));
    io::write_string_attribute(g, "baseline_arch", baseline_genome.to_string());
    io::write_string_attribute(g, "source_arch", x.source.to_string());
    io::write_string_attribute(g, "source", source.from);
    io::write_string_attribute(g, "method", method_name(x.method));
    io::write_string_attribute(g, "target", target.name);
    io::write_double_attribute(g, "scale_factor", x.scale_factor);
    io::write_int_attribute(g, "copies", x.copies);
    io::write_double_attribute(g, "remainder_fraction", x.remainder_fraction);
    io::write_int_attribute(g, "source_size", x.source_size);
    io::write_int_attribute(g, "target_size", x.target_size);
    io::write_double_attribute(g, "kv_cache_ratio",
                               winner.kv_cache_bytes_per_token_bf16 > 0
                                   ? static_cast<double>(baseline.kv_cache_bytes_per_token_bf16) /
                                         static_cast<double>(winner.kv_cache_bytes_per_token_bf16)
                                   : 0.0);
    io::write_string_attribute(g, "input_fingerprint", fingerprint);
    io::write_string_attribute(g, "status", "completed");  // last: a reader trusts the group only with it
  });
}

bool has_completed_extrapolation(hid_t file, std::string* fingerprint) {
  if (H5Lexists(file, "extrapolate", H5P_DEFAULT) <= 0) return false;
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/extrapolate", H5P_DEFAULT)));
  if (!io::has_attribute(group.get(), "status") || io::read_string_attribute(group.get(), "status") != "completed")
    return false;
  *fingerprint = io::read_string_attribute(group.get(), "input_fingerprint");
  return true;
}

}  // namespace

Method resolve_method(MethodChoice choice, size_t layers) {
  switch (choice) {
    case MethodChoice::Stack:
      return Method::Stack;
    case MethodChoice::Stretch:
      return Method::Stretch;
    case MethodChoice::Auto:
      break;
  }
  return layers >= 16 ? Method::Stretch : Method::Stack;  // the paper's recipe (digest section 6)
}

bool extrapolate_complete(const ExtrapolateOptions& options, const ExtrapolateJob& job) {
  int64_t complete = 0;
  dist::agree_on_errors(*job.world, [&] {
    if (job.world->rank() != 0 || job.run_dir.empty()) return;
    const std::string path = results_path(job.run_dir);
    std::error_code missing;
    if (!std::filesystem::exists(path, missing)) return;
    std::string recorded;
    {
      const auto file = io::open_file_read_only(path);
      if (!has_completed_extrapolation(file.get(), &recorded)) return;
    }
    try {
      complete = recorded == hex_fingerprint(input_text(options, find_source(options, job.run_dir)));
    } catch (const Error&) {  // run() reports it
    }
  });
  job.world->broadcast(&complete, sizeof complete, 0);
  return complete != 0;
}

int run_extrapolate(const ExtrapolateOptions& options, const ExtrapolateJob& job) {
  dist::agree_on_errors(*job.world, [&] {
    if (job.world->rank() != 0) return;
    options.target.validate();
    if (!job.run_dir.empty() && !options.arch) {  // the aggregate must be there before the directory is taken
      std::error_code missing;
      HNAS_CHECK(std::filesystem::exists(results_path(job.run_dir), missing), ConfigError,
                 "no search in " << job.run_dir << " (" << results_path(job.run_dir)
                                 << " does not exist); run hnas search and hnas aggregate there first, or give --arch");
    }
    if (!job.run_dir.empty() && job.hold_run_directory) job.hold_run_directory();
    const Source source = find_source(options, job.run_dir);
    const auto method = resolve_method(options.method, source.genome.size());
    const auto x = extrapolate(source.genome, method, options.target);
    const auto baseline_layout = baseline_genome(options.target);
    const auto winner = cost_of(x.result, options.target);
    const auto baseline = cost_of(baseline_layout, options.target);
    print(x, source, options.target, winner, baseline, baseline_layout);
    if (job.run_dir.empty() || job.dry_run) return;
    const std::string path = results_path(job.run_dir);
    write(path, x, source, options.target, winner, baseline, baseline_layout,
          hex_fingerprint(input_text(options, source)), job.config);
    log::info("extrapolate: written to " + path + ":/extrapolate");
  });
  return kExitOk;
}

}  // namespace hnas::extrapolate
