// SPDX-License-Identifier: Apache-2.0
#include "pretrain_record.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "hnas/core/check.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"

namespace hnas::pretrain {

namespace {

// Rebuilds /pretrain/summary from every /pretrain/<model> group of the new file.
io::Table summary_table(hid_t file) {
  io::Table t;
  t.columns = {{"model", io::ColumnType::String, 1, "winner, baseline, or the architecture"},
               {"arch", io::ColumnType::String, 1, "one letter per layer"},
               {"status", io::ColumnType::String, 1, "running, completed or diverged"},
               {"final_validation_loss", io::ColumnType::Float64, 0, "nats/token at the last step"},
               {"steps", io::ColumnType::Int64, 0, "optimizer steps done"},
               {"tokens", io::ColumnType::Int64, 0, "training tokens seen"},
               {"wall_seconds", io::ColumnType::Float64, 0, "training wall time (s)"},
               {"tokens_per_second", io::ColumnType::Float64, 0, "mean training throughput, all ranks"},
               {"mfu", io::ColumnType::Float64, 0, "mean model FLOPs utilisation"},
               {"parameters", io::ColumnType::Int64, 0, "total parameters"},
               {"non_embedding_parameters", io::ColumnType::Int64, 0, "parameters outside embedding and head"}};
  const io::H5Group group(HNAS_CHECK_H5(H5Gopen2(file, "/pretrain", H5P_DEFAULT)));
  for (const auto& name : io::link_names(group.get())) {
    if (name == "summary" || name == "tokenizer") continue;  // not models
    const io::H5Group m(HNAS_CHECK_H5(H5Gopen2(group.get(), name.c_str(), H5P_DEFAULT)));
    t.rows.push_back(
        {name, io::read_string_attribute(m.get(), "arch"), io::read_string_attribute(m.get(), "status"),
         io::read_double_attribute(m.get(), "final_validation_loss"), io::read_int_attribute(m.get(), "steps"),
         io::read_int_attribute(m.get(), "tokens"), io::read_double_attribute(m.get(), "wall_seconds"),
         io::read_double_attribute(m.get(), "tokens_per_second"), io::read_double_attribute(m.get(), "mfu"),
         io::read_int_attribute(m.get(), "parameters"), io::read_int_attribute(m.get(), "non_embedding_parameters")});
  }
  io::fit_string_columns(t);
  return t;
}

}  // namespace

void write_model_record(const std::string& results_path, const ModelSpec& spec, const ModelRecord& r,
                        const std::string& fingerprint) {
  const std::string group = "/pretrain/" + spec.name;
  io::update_file_atomically(results_path, {group, "/pretrain/summary"}, [&](hid_t file) {
    io::write_table(file, group + "/train", train_series_table(r.train),
                    "training loss, lr, gradient norm, throughput");
    io::write_table(file, group + "/validation", validation_series_table(r.validation), "validation loss");
    const io::H5Group g(HNAS_CHECK_H5(H5Gopen2(file, group.c_str(), H5P_DEFAULT)));
    const auto params = arch::count_parameters(spec.genome, spec.shape);
    io::write_string_attribute(g.get(), "doc", "pre-training of one model: its series and summary");
    io::write_string_attribute(g.get(), "arch", spec.genome.to_string());
    io::write_string_attribute(g.get(), "shape", spec.shape.describe());
    io::write_int_attribute(g.get(), "parameters", params.total);
    io::write_int_attribute(g.get(), "non_embedding_parameters", params.non_embedding);
    io::write_int_attribute(g.get(), "steps", r.steps);
    io::write_int_attribute(g.get(), "total_steps", r.total_steps);
    io::write_int_attribute(g.get(), "tokens", r.tokens);
    io::write_double_attribute(g.get(), "wall_seconds", r.wall_seconds);
    io::write_double_attribute(g.get(), "tokens_per_second", r.tokens_per_second);
    io::write_double_attribute(g.get(), "mfu", r.mfu);
    io::write_double_attribute(g.get(), "final_validation_loss", r.final_validation_loss);
    io::write_double_attribute(g.get(), "exposed_allreduce_seconds_per_step",
                               r.comm_steps > 0 ? r.comm_seconds / static_cast<double>(r.comm_steps) : 0.0);
    io::write_string_attribute(g.get(), "identity_fingerprint", fingerprint);
    io::write_string_attribute(g.get(), "status", r.status);
    io::write_table(file, "/pretrain/summary", summary_table(file), "one row per model");
    const io::H5Group top(HNAS_CHECK_H5(H5Gopen2(file, "/pretrain", H5P_DEFAULT)));
    io::write_string_attribute(
        top.get(), "doc", "pre-training of the winner(s) and the baseline on the same tokens; one group per model");
  });
}

namespace {

// PREFIX of a hnas_make_shards shard PREFIX_train_000000.bin (or _val_, .h5), else "".
std::string shard_prefix(const std::string& shard) {
  const std::string path = shard.substr(0, shard.find(".h5:"));
  for (const char* split : {"_train_", "_val_"}) {
    const size_t at = path.rfind(split);
    if (at != std::string::npos) return path.substr(0, at);
  }
  return "";
}

std::string file_bytes(const std::string& path, std::uintmax_t limit) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error || size > limit) return "";
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return in.good() || in.eof() ? bytes.str() : "";
}

}  // namespace

void write_tokenizer_record(const std::string& results_path, const data::ShardTokenizer& tokenizer,
                            const std::string& first_shard) {
  const std::string prefix = shard_prefix(first_shard);
  const std::string description = prefix.empty() ? "" : file_bytes(prefix + "_tokenizer.txt", 1 << 16);
  const std::string model = prefix.empty() ? "" : file_bytes(prefix + "_tokenizer.model", 64u << 20);
  io::update_file_atomically(results_path, {"/pretrain/tokenizer"}, [&](hid_t file) {
    if (H5Lexists(file, "pretrain", H5P_DEFAULT) <= 0)
      io::H5Group(HNAS_CHECK_H5(H5Gcreate2(file, "pretrain", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    const io::H5Group g(HNAS_CHECK_H5(H5Gcreate2(file, "/pretrain/tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    char fingerprint[17];
    std::snprintf(fingerprint, sizeof fingerprint, "%016llx", static_cast<unsigned long long>(tokenizer.fingerprint));
    io::write_string_attribute(g.get(), "doc", "the tokenizer the training shards record");
    io::write_int_attribute(g.get(), "vocab_size", tokenizer.vocab_size);
    io::write_string_attribute(g.get(), "fingerprint", tokenizer.known() ? fingerprint : "unknown");
    io::write_string_attribute(g.get(), "shard", first_shard);
    if (!description.empty())
      io::write_string_dataset(file, "/pretrain/tokenizer/description", description,
                               "the tokenizer's own description (its _tokenizer.txt)");
    if (!model.empty())
      io::write_dataset_1d(file, "/pretrain/tokenizer/model",
                           std::vector<uint8_t>(model.begin(), model.end()));  // the .model file's bytes
  });
}

// Whether /pretrain/<model> is complete with this identity. Rank 0.
bool model_complete(hid_t file, const std::string& name, const std::string& fingerprint) {
  const std::string group = "pretrain/" + name;
  if (H5Lexists(file, "pretrain", H5P_DEFAULT) <= 0 || H5Lexists(file, group.c_str(), H5P_DEFAULT) <= 0) return false;
  const io::H5Group g(HNAS_CHECK_H5(H5Gopen2(file, group.c_str(), H5P_DEFAULT)));
  return io::has_attribute(g.get(), "status") && io::read_string_attribute(g.get(), "status") != "running" &&
         io::read_string_attribute(g.get(), "identity_fingerprint") == fingerprint;
}

void finish_record(ModelRecord& record) {
  if (!record.validation.empty()) record.final_validation_loss = record.validation.back().loss;
  if (record.status == "running") record.status = "completed";
  double mean_tps = 0, mean_mfu = 0;
  for (const auto& p : record.train) {
    mean_tps += p.tokens_per_second;
    mean_mfu += p.mfu;
  }
  if (!record.train.empty()) {
    mean_tps /= static_cast<double>(record.train.size());
    mean_mfu /= static_cast<double>(record.train.size());
  }
  record.tokens_per_second = mean_tps;
  record.mfu = mean_mfu;
}

std::string serialize_record(const ModelRecord& r, const std::string& fingerprint) {
  dist::MessageWriter w;
  w.put_string(r.status).put_string(fingerprint).put(r.comm_seconds).put(r.comm_steps).put(r.steps);
  w.put(r.total_steps).put(r.tokens).put(r.wall_seconds).put(r.tokens_per_second).put(r.mfu);
  w.put(r.final_validation_loss).put_vector(r.train).put_vector(r.validation);
  return w.bytes();
}

ModelRecord deserialize_record(const std::string& bytes, std::string& fingerprint) {
  dist::MessageReader rd(bytes);
  ModelRecord r;
  r.status = rd.get_string();
  fingerprint = rd.get_string();
  r.comm_seconds = rd.get<double>();
  r.comm_steps = rd.get<int64_t>();
  r.steps = rd.get<int64_t>();
  r.total_steps = rd.get<int64_t>();
  r.tokens = rd.get<int64_t>();
  r.wall_seconds = rd.get<double>();
  r.tokens_per_second = rd.get<double>();
  r.mfu = rd.get<double>();
  r.final_validation_loss = rd.get<double>();
  r.train = rd.get_vector<TrainPoint>();
  r.validation = rd.get_vector<ValidationPoint>();
  return r;
}

}  // namespace hnas::pretrain
