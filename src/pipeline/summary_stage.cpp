// SPDX-License-Identifier: Apache-2.0
// The closing table of `hnas run`: every pre-trained model next to the baseline, from
// /pretrain and /inference of results.h5, printed and kept in /summary.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/pipeline/stage.hpp"

namespace hnas::pipeline {
namespace {

struct ModelLine {
  std::string name, arch, status;
  int64_t attention_layers = 0, mlp_layers = 0, parameters = 0;
  double validation_loss = NAN, tokens_per_second = NAN, mfu = NAN;
  double prefill_ms = NAN, decode_ms_per_token = NAN, kv_bytes_per_token = NAN;
};

// The cell of `row` under column `name` of `table` as a number (NaN when absent).
double number(const io::Table& table, const std::vector<io::Cell>& row, const std::string& name) {
  for (size_t i = 0; i < table.columns.size(); ++i) {
    if (table.columns[i].name != name) continue;
    if (const auto* v = std::get_if<double>(&row[i])) return *v;
    if (const auto* v = std::get_if<int64_t>(&row[i])) return static_cast<double>(*v);
  }
  return NAN;
}

std::string text(const io::Table& table, const std::vector<io::Cell>& row, const std::string& name) {
  for (size_t i = 0; i < table.columns.size(); ++i)
    if (table.columns[i].name == name)
      if (const auto* v = std::get_if<std::string>(&row[i])) return *v;
  return "";
}

// Winner(s) first, then the other models, the baseline last (as hnas generate orders them).
int display_rank(const std::string& name) { return name == "winner" ? 0 : name == "baseline" ? 2 : 1; }

std::vector<ModelLine> read_models(hid_t file) {
  HNAS_CHECK(H5Lexists(file, "pretrain", H5P_DEFAULT) > 0, ConfigError,
             "results.h5 has no /pretrain: the summary needs the pre-training stage first");
  const auto pretrain = io::read_table(file, "/pretrain/summary");
  std::map<std::string, std::vector<io::Cell>> inference_rows;
  io::Table inference;
  if (H5Lexists(file, "inference", H5P_DEFAULT) > 0) {
    inference = io::read_table(file, "/inference/models");
    for (const auto& row : inference.rows) inference_rows[text(inference, row, "model")] = row;
  }
  std::vector<ModelLine> lines;
  for (const auto& row : pretrain.rows) {
    ModelLine m;
    m.name = text(pretrain, row, "model");
    m.arch = text(pretrain, row, "arch");
    m.status = text(pretrain, row, "status");
    m.attention_layers = std::count(m.arch.begin(), m.arch.end(), 'A');
    m.mlp_layers = std::count(m.arch.begin(), m.arch.end(), 'M');
    m.parameters = static_cast<int64_t>(number(pretrain, row, "parameters"));
    m.validation_loss = number(pretrain, row, "final_validation_loss");
    m.tokens_per_second = number(pretrain, row, "tokens_per_second");
    m.mfu = number(pretrain, row, "mfu");
    if (const auto it = inference_rows.find(m.name); it != inference_rows.end()) {
      m.prefill_ms = number(inference, it->second, "prefill_ms");
      m.decode_ms_per_token = number(inference, it->second, "decode_ms_per_token");
      m.kv_bytes_per_token = number(inference, it->second, "kv_cache_bytes_per_token");
    }
    lines.push_back(m);
  }
  HNAS_CHECK(!lines.empty(), ConfigError, "results.h5:/pretrain/summary has no models");
  std::stable_sort(lines.begin(), lines.end(),
                   [](const ModelLine& a, const ModelLine& b) { return display_rank(a.name) < display_rank(b.name); });
  return lines;
}

double ratio(double value, double base) { return base > 0 && std::isfinite(value) ? value / base : NAN; }

io::Table summary_table(const std::vector<ModelLine>& lines) {
  const auto& base = lines.back();  // the baseline (or, with explicit architectures, the last)
  io::Table t;
  t.columns = {{"model", io::ColumnType::String, 1, "winner, baseline, or the architecture"},
               {"arch", io::ColumnType::String, 1, "one letter per layer"},
               {"status", io::ColumnType::String, 1, "completed or diverged"},
               {"layers", io::ColumnType::Int64, 0, "layers"},
               {"attention_layers", io::ColumnType::Int64, 0, "A layers"},
               {"mlp_layers", io::ColumnType::Int64, 0, "M layers"},
               {"parameters", io::ColumnType::Int64, 0, "total parameters"},
               {"validation_loss", io::ColumnType::Float64, 0, "final validation loss (nats/token)"},
               {"tokens_per_second", io::ColumnType::Float64, 0, "mean training throughput, all ranks"},
               {"mfu", io::ColumnType::Float64, 0, "mean model FLOPs utilisation in training"},
               {"prefill_ms", io::ColumnType::Float64, 0, "prefill time of the timing prompt, batch 1 (ms)"},
               {"decode_ms_per_token", io::ColumnType::Float64, 0, "decode latency per token, batch 1 (ms)"},
               {"kv_cache_bytes_per_token", io::ColumnType::Float64, 0, "KV cache per token"},
               {"validation_loss_minus_baseline", io::ColumnType::Float64, 0, "nats/token; negative is better"},
               {"parameters_ratio", io::ColumnType::Float64, 0, "over the baseline's"},
               {"tokens_per_second_ratio", io::ColumnType::Float64, 0, "over the baseline's"},
               {"decode_ratio", io::ColumnType::Float64, 0, "decode latency over the baseline's"},
               {"kv_cache_ratio", io::ColumnType::Float64, 0, "KV-cache bytes over the baseline's"}};
  for (const auto& m : lines)
    t.rows.push_back({m.name, m.arch, m.status, static_cast<int64_t>(m.arch.size()), m.attention_layers, m.mlp_layers,
                      m.parameters, m.validation_loss, m.tokens_per_second, m.mfu, m.prefill_ms, m.decode_ms_per_token,
                      m.kv_bytes_per_token, m.validation_loss - base.validation_loss,
                      ratio(static_cast<double>(m.parameters), static_cast<double>(base.parameters)),
                      ratio(m.tokens_per_second, base.tokens_per_second),
                      ratio(m.decode_ms_per_token, base.decode_ms_per_token),
                      ratio(m.kv_bytes_per_token, base.kv_bytes_per_token)});
  io::fit_string_columns(t);
  return t;
}

std::string shorten(const std::string& arch) { return arch.size() <= 24 ? arch : arch.substr(0, 21) + "..."; }

void print_summary(const std::vector<ModelLine>& lines, const std::string& path) {
  log::info("summary (" + path + ":/summary):");
  log::info(log::format("%-10s %-24s %6s %4s %4s %10s %9s %10s %6s %10s %10s %9s", "model", "arch", "layers", "A", "M",
                        "params", "val_loss", "tokens/s", "MFU", "prefill_ms", "decode_ms", "KV_B/tok"));
  for (const auto& m : lines)
    log::info(log::format("%-10s %-24s %6zu %4lld %4lld %10lld %9.4f %10.0f %5.1f%% %10.2f %10.3f %9.0f",
                          m.name.c_str(), shorten(m.arch).c_str(), m.arch.size(),
                          static_cast<long long>(m.attention_layers), static_cast<long long>(m.mlp_layers),
                          static_cast<long long>(m.parameters), m.validation_loss, m.tokens_per_second, 100 * m.mfu,
                          m.prefill_ms, m.decode_ms_per_token, m.kv_bytes_per_token));
  const auto& base = lines.back();
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto& m = lines[i];
    log::info(log::format(
        "%s vs %s: validation loss %+.4f nats/token, parameters %.3fx, training tokens/s %.2fx, "
        "decode latency %.2fx, KV cache %.2fx",
        m.name.c_str(), base.name.c_str(), m.validation_loss - base.validation_loss,
        ratio(static_cast<double>(m.parameters), static_cast<double>(base.parameters)),
        ratio(m.tokens_per_second, base.tokens_per_second), ratio(m.decode_ms_per_token, base.decode_ms_per_token),
        ratio(m.kv_bytes_per_token, base.kv_bytes_per_token)));
  }
}

// Copies the architectures of the earlier stages onto /summary, when they are there.
void write_lineage(hid_t file, hid_t summary) {
  const auto copy = [&](const char* group, const char* attribute, const char* as) {
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0) return;
    const io::H5Group g(HNAS_CHECK_H5(H5Gopen2(file, group, H5P_DEFAULT)));
    if (io::has_attribute(g.get(), attribute))
      io::write_string_attribute(summary, as, io::read_string_attribute(g.get(), attribute));
  };
  copy("aggregate", "best_arch", "search_best_arch");
  copy("aggregate", "arch", "aggregate_arch");
  copy("extrapolate", "method", "extrapolate_method");
  copy("extrapolate", "arch", "winner_arch");
  copy("extrapolate", "baseline_arch", "baseline_arch");
}

class SummaryStage final : public Stage {
 public:
  const char* name() const override { return "summary"; }
  bool needs_run_dir() const override { return true; }
  bool complete(const RunContext&) const override { return false; }  // cheap: always rebuilt and shown

  int run(RunContext& context) override {
    dist::agree_on_errors(context.world(), [&] {
      if (context.world().rank() != 0 || context.dry_run()) return;
      const std::string path = context.run_dir() + "/results.h5";
      std::vector<ModelLine> lines;
      {
        const auto file = io::open_file_read_only(path);
        lines = read_models(file.get());
      }
      io::update_file_atomically(path, {"/summary"}, [&](hid_t file) {
        io::write_table(file, "/summary/models", summary_table(lines),
                        "every pre-trained model against the baseline (the last row)");
        const io::H5Group g(HNAS_CHECK_H5(H5Gopen2(file, "/summary", H5P_DEFAULT)));
        io::write_string_attribute(g.get(), "doc",
                                   "the run's result: the winner(s) against the Llama-style baseline, from /pretrain "
                                   "and /inference");
        write_lineage(file, g.get());
      });
      print_summary(lines, path);
    });
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Stage> make_summary_stage() { return std::make_unique<SummaryStage>(); }

}  // namespace hnas::pipeline
