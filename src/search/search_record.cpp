// SPDX-License-Identifier: Apache-2.0
#include "hnas/search/search_record.hpp"

#include <algorithm>
#include <map>

#include "hnas/arch/genome.hpp"
#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/io/h5.hpp"
#include "hnas/io/results_table.hpp"
#include "hnas/io/run_directory.hpp"

namespace hnas::search {
namespace {

using io::Cell;
using io::ColumnType;

// A table under construction: string columns get the width of their longest value.
class TableBuilder {
 public:
  void column(const std::string& name, ColumnType type, const std::string& doc) {
    table_.columns.push_back({name, type, type == ColumnType::String ? size_t{1} : 0, doc});
  }
  void row(std::vector<Cell> cells) {
    for (size_t c = 0; c < cells.size(); ++c)
      if (const auto* text = std::get_if<std::string>(&cells[c]))
        table_.columns[c].string_length = std::max(table_.columns[c].string_length, text->size());
    table_.rows.push_back(std::move(cells));
  }
  const io::Table& table() const { return table_; }

 private:
  io::Table table_;
};

// Column access by name for reading back.
class TableReader {
 public:
  explicit TableReader(io::Table table) : table_(std::move(table)) {
    for (size_t c = 0; c < table_.columns.size(); ++c) index_[table_.columns[c].name] = c;
  }
  size_t size() const { return table_.rows.size(); }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  int64_t integer(size_t row, const std::string& name) const { return std::get<int64_t>(cell(row, name)); }
  double real(size_t row, const std::string& name) const { return std::get<double>(cell(row, name)); }
  std::string text(size_t row, const std::string& name) const { return std::get<std::string>(cell(row, name)); }

 private:
  const Cell& cell(size_t row, const std::string& name) const {
    const auto it = index_.find(name);
    HNAS_CHECK(it != index_.end(), InputError, "results file: column " << name << " is missing");
    return table_.rows[row][it->second];
  }
  io::Table table_;
  std::map<std::string, size_t> index_;
};

// Error messages are stored whole up to this length; longer ones are cut with a marker.
constexpr size_t kMaxErrorText = 240;

std::string clip_text(const std::string& text) {
  std::string out;
  for (char c : text) out += (c >= 32 && c < 127) ? c : ' ';  // the table stores 7-bit ASCII
  if (out.size() > kMaxErrorText) out = out.substr(0, kMaxErrorText - 3) + "...";
  return out;
}

const char* kCandidatesDoc = "one row per evaluation (a candidate at one fidelity), in the order results arrived";

constexpr CandidateStatus kCandidateStatuses[] = {
    CandidateStatus::Completed,   CandidateStatus::ReachedTarget, CandidateStatus::Diverged, CandidateStatus::TimedOut,
    CandidateStatus::OutOfMemory, CandidateStatus::Failed,        CandidateStatus::Stopped};

SearchStatus parse_search_status(const std::string& name) {
  for (auto status : {SearchStatus::Running, SearchStatus::Stopped, SearchStatus::Completed})
    if (name == search_status_name(status)) return status;
  throw InputError("unknown search status \"" + name + "\" in /search");
}

}  // namespace

const char* candidate_status_name(CandidateStatus status) {
  switch (status) {
    case CandidateStatus::Completed:
      return "completed";
    case CandidateStatus::ReachedTarget:
      return "reached_target";
    case CandidateStatus::Diverged:
      return "diverged";
    case CandidateStatus::TimedOut:
      return "timed_out";
    case CandidateStatus::OutOfMemory:
      return "out_of_memory";
    case CandidateStatus::Failed:
      return "failed";
    case CandidateStatus::Stopped:
      return "stopped";
  }
  return "?";
}

CandidateStatus parse_candidate_status(const std::string& name) {
  for (auto status : kCandidateStatuses)
    if (name == candidate_status_name(status)) return status;
  throw InputError("unknown candidate status \"" + name + "\"");
}

CandidateStatus candidate_status_of(train::RunStatus status) {
  switch (status) {
    case train::RunStatus::Completed:
      return CandidateStatus::Completed;
    case train::RunStatus::ReachedTarget:
      return CandidateStatus::ReachedTarget;
    case train::RunStatus::Diverged:
      return CandidateStatus::Diverged;
    case train::RunStatus::TimedOut:
      return CandidateStatus::TimedOut;
    case train::RunStatus::Stopped:
      return CandidateStatus::Stopped;
    case train::RunStatus::OutOfMemory:
      return CandidateStatus::OutOfMemory;
  }
  return CandidateStatus::Failed;
}

const char* search_status_name(SearchStatus status) {
  switch (status) {
    case SearchStatus::Running:
      return "running";
    case SearchStatus::Stopped:
      return "stopped";
    case SearchStatus::Completed:
      return "completed";
  }
  return "?";
}

std::string serialize(const CandidateResult& r) {
  dist::MessageWriter w;
  w.put(r.candidate_id).put_string(r.arch).put(r.rung).put(r.stage).put(r.fidelity).put(r.status);
  w.put<int32_t>(r.valid).put(r.objective).put_vector(r.task_scores).put(r.validation_loss);
  w.put(r.parameters).put(r.non_embedding_parameters).put(r.flops_per_token).put(r.steps).put(r.tokens);
  w.put(r.seconds).put(r.started_unix).put(r.finished_unix).put(r.team).put_string(r.error);
  w.put<uint64_t>(r.runs.size());
  for (const auto& run : r.runs) {
    w.put_string(run.label).put(run.lr).put(run.weight_decay).put(run.status).put(run.steps);
    w.put(run.accuracy).put(run.loss).put(run.seconds);
  }
  w.put_vector(r.curve);
  return w.bytes();
}

CandidateResult deserialize_result(const std::string& bytes) {
  dist::MessageReader m(bytes);
  CandidateResult r;
  r.candidate_id = m.get<int64_t>();
  r.arch = m.get_string();
  r.rung = m.get<int32_t>();
  r.stage = m.get<int32_t>();
  r.fidelity = m.get<double>();
  r.status = m.get<CandidateStatus>();
  r.valid = m.get<int32_t>() != 0;
  r.objective = m.get<double>();
  r.task_scores = m.get_vector<double>();
  r.validation_loss = m.get<double>();
  r.parameters = m.get<int64_t>();
  r.non_embedding_parameters = m.get<int64_t>();
  r.flops_per_token = m.get<double>();
  r.steps = m.get<int64_t>();
  r.tokens = m.get<int64_t>();
  r.seconds = m.get<double>();
  r.started_unix = m.get<double>();
  r.finished_unix = m.get<double>();
  r.team = m.get<int32_t>();
  r.error = m.get_string();
  r.runs.resize(m.get<uint64_t>());
  for (auto& run : r.runs) {
    run.label = m.get_string();
    run.lr = m.get<double>();
    run.weight_decay = m.get<double>();
    run.status = m.get<train::RunStatus>();
    run.steps = m.get<int64_t>();
    run.accuracy = m.get<double>();
    run.loss = m.get<double>();
    run.seconds = m.get<double>();
  }
  r.curve = m.get_vector<CurveRow>();
  return r;
}

SearchRecord::SearchRecord(std::vector<std::string> task_names, io::Provenance provenance)
    : task_names_(std::move(task_names)), provenance_(std::move(provenance)) {}

void SearchRecord::set_summary(const std::string& name, double value) {
  for (auto& s : summaries_)
    if (s.first == name) {
      s.second = value;
      return;
    }
  summaries_.emplace_back(name, value);
}

io::Table candidates_table(const std::vector<CandidateResult>& results, const std::vector<std::string>& task_names) {
  TableBuilder candidates;
  candidates.column("candidate_id", ColumnType::Int64, "proposal number, unique in the search");
  candidates.column("arch", ColumnType::String, "architecture, one letter per layer (A attention, M MLP)");
  candidates.column("num_layers", ColumnType::Int64, "layers");
  candidates.column("num_attention", ColumnType::Int64, "attention layers");
  candidates.column("rung", ColumnType::Int64, "successive-halving fidelity level (0 lowest)");
  candidates.column("stage", ColumnType::Int64, "incremental-search stage");
  candidates.column("fidelity", ColumnType::Float64, "training budget as a fraction of the full one");
  candidates.column("objective", ColumnType::Float64, "higher is better: MAD mean accuracy, or -validation loss");
  candidates.column("valid", ColumnType::Int64, "1 when the objective is usable");
  candidates.column("status", ColumnType::String,
                    "completed, reached_target, diverged, timed_out, out_of_memory, failed");
  for (const auto& task : task_names)
    candidates.column("task_" + task, ColumnType::Float64, "MAD task score (accuracy)");
  candidates.column("validation_loss", ColumnType::Float64, "token data: final validation loss (nats/token)");
  candidates.column("parameters", ColumnType::Int64, "total parameters of the largest model trained");
  candidates.column("non_embedding_parameters", ColumnType::Int64, "parameters outside embedding and head");
  candidates.column("flops_per_token", ColumnType::Float64, "forward FLOPs per token");
  candidates.column("steps", ColumnType::Int64, "optimizer steps, all training runs together");
  candidates.column("tokens", ColumnType::Int64, "training tokens, all training runs together");
  candidates.column("seconds", ColumnType::Float64, "wall time of the evaluation (s)");
  candidates.column("started_unix", ColumnType::Float64, "start, seconds since the Unix epoch");
  candidates.column("finished_unix", ColumnType::Float64, "end, seconds since the Unix epoch");
  candidates.column("team", ColumnType::Int64, "team of ranks that trained it");
  candidates.column("error", ColumnType::String, "what failed, for status failed");

  for (const auto& r : results) {
    const auto genome = arch::Genome::parse(r.arch);
    std::vector<Cell> row;
    row.reserve(candidates.table().columns.size());  // no reallocation of the cells
    for (Cell cell : {Cell{r.candidate_id}, Cell{r.arch}, Cell{static_cast<int64_t>(genome.size())},
                      Cell{static_cast<int64_t>(genome.count(arch::Primitive::Attention))}, Cell{int64_t{r.rung}},
                      Cell{int64_t{r.stage}}, Cell{r.fidelity}, Cell{r.objective}, Cell{int64_t{r.valid}},
                      Cell{std::string(candidate_status_name(r.status))}})
      row.push_back(std::move(cell));
    for (size_t t = 0; t < task_names.size(); ++t) row.emplace_back(t < r.task_scores.size() ? r.task_scores[t] : NAN);
    for (Cell cell : {Cell{r.validation_loss}, Cell{r.parameters}, Cell{r.non_embedding_parameters},
                      Cell{r.flops_per_token}, Cell{r.steps}, Cell{r.tokens}, Cell{r.seconds}, Cell{r.started_unix},
                      Cell{r.finished_unix}, Cell{int64_t{r.team}}, Cell{clip_text(r.error)}})
      row.push_back(std::move(cell));
    candidates.row(std::move(row));
  }
  return candidates.table();
}

void SearchRecord::save(const std::string& path) const {
  TableBuilder runs, curves, events;
  runs.column("candidate_id", ColumnType::Int64, "see candidates");
  runs.column("rung", ColumnType::Int64, "see candidates");
  runs.column("run", ColumnType::Int64, "training run within the evaluation");
  runs.column("label", ColumnType::String, "MAD setting and grid cell, or 'tokens'");
  runs.column("lr", ColumnType::Float64, "peak learning rate");
  runs.column("weight_decay", ColumnType::Float64, "AdamW weight decay");
  runs.column("status", ColumnType::String, "run status");
  runs.column("steps", ColumnType::Int64, "optimizer steps");
  runs.column("accuracy", ColumnType::Float64, "best checkpoint's macro accuracy (MAD)");
  runs.column("loss", ColumnType::Float64, "best checkpoint's evaluation loss");
  runs.column("seconds", ColumnType::Float64, "wall time (s)");

  curves.column("candidate_id", ColumnType::Int64, "see candidates");
  curves.column("rung", ColumnType::Int64, "see candidates");
  curves.column("run", ColumnType::Int64, "see runs");
  curves.column("step", ColumnType::Int64, "optimizer step");
  curves.column("loss", ColumnType::Float64, "training loss (mean per scored token)");

  events.column("seq", ColumnType::Int64, "order of the event");
  events.column("event", ColumnType::String, "propose or observe");
  events.column("candidate_id", ColumnType::Int64, "see candidates");
  events.column("arch", ColumnType::String, "architecture");
  events.column("rung", ColumnType::Int64, "fidelity level");
  events.column("stage", ColumnType::Int64, "incremental stage");
  events.column("reason", ColumnType::String, "why the strategy proposed it");
  events.column("acquisition", ColumnType::Float64, "BO: log expected improvement of the proposal");
  events.column("objective", ColumnType::Float64, "observe: the objective reported to the strategy");
  events.column("valid", ColumnType::Int64, "observe: 1 when the objective is usable");

  for (const auto& r : results_) {
    for (size_t i = 0; i < r.runs.size(); ++i) {
      const auto& run = r.runs[i];
      runs.row({r.candidate_id, int64_t{r.rung}, static_cast<int64_t>(i), clip_text(run.label), run.lr,
                run.weight_decay, std::string(train::run_status_name(run.status)), run.steps, run.accuracy, run.loss,
                run.seconds});
    }
    for (const auto& point : r.curve)
      curves.row({r.candidate_id, int64_t{r.rung}, int64_t{point.run}, point.step, point.loss});
  }
  for (size_t i = 0; i < events_.size(); ++i) {
    const auto& e = events_[i];
    const bool observe = e.kind == SearchEvent::Kind::Observe;
    events.row({static_cast<int64_t>(i), std::string(observe ? "observe" : "propose"), e.candidate_id,
                e.proposal.genome.to_string(), int64_t{e.proposal.rung}, int64_t{e.proposal.stage},
                clip_text(e.proposal.reason), e.proposal.acquisition, observe ? e.outcome.objective : NAN,
                int64_t{observe && e.outcome.valid}});
  }

  // Later stages' groups (/aggregate, ...) are kept: a resumed search must not erase them.
  io::update_file_atomically(path, {"/search", "/provenance"}, [&](hid_t file) {
    io::write_table(file, "/search/candidates", candidates_table(results_, task_names_), kCandidatesDoc);
    io::write_table(file, "/search/runs", runs.table(), "every training run behind each evaluation");
    io::write_table(file, "/search/curves", curves.table(), "training loss at every step of every run");
    io::write_table(file, "/search/events", events.table(),
                    "the strategy's decisions and observations in order (replayed on resume)");
    io::H5Group search(HNAS_CHECK_H5(H5Gopen2(file, "/search", H5P_DEFAULT)));
    io::write_string_attribute(search.get(), "doc",
                               "the architecture search: every evaluation (candidates), its training runs and "
                               "loss curves, and the strategy's event log; status running, stopped or completed");
    io::write_string_attribute(search.get(), "status", search_status_name(status_));
    std::string tasks;
    for (const auto& t : task_names_) tasks += (tasks.empty() ? "" : ",") + t;
    io::write_string_attribute(search.get(), "tasks", tasks);
    for (const auto& [name, value] : summaries_) io::write_double_attribute(search.get(), name, value);

    io::write_provenance(file, provenance_);
  });
}

SearchRecord SearchRecord::load(const std::string& path) {
  const auto file = io::open_results_file(path, {"/search", "/provenance"});
  const io::H5Group search(HNAS_CHECK_H5(H5Gopen2(file.get(), "/search", H5P_DEFAULT)));
  std::vector<std::string> tasks;
  for (const auto& name : [&] {
         std::vector<std::string> out;
         std::string text = io::read_string_attribute(search.get(), "tasks"), item;
         for (char c : text + ",") {
           if (c == ',') {
             if (!item.empty()) out.push_back(item);
             item.clear();
           } else {
             item += c;
           }
         }
         return out;
       }())
    tasks.push_back(name);

  const auto p = io::read_provenance(file.get());
  SearchRecord record(tasks, p);
  record.status_ = parse_search_status(io::read_string_attribute(search.get(), "status"));

  const TableReader candidates(io::read_table(file.get(), "/search/candidates"));
  const TableReader runs(io::read_table(file.get(), "/search/runs"));
  const TableReader curves(io::read_table(file.get(), "/search/curves"));
  const TableReader events(io::read_table(file.get(), "/search/events"));

  // Runs and curves belong to (candidate, rung): one evaluation.
  std::map<std::pair<int64_t, int64_t>, size_t> evaluation;
  for (size_t i = 0; i < candidates.size(); ++i) {
    CandidateResult r;
    r.candidate_id = candidates.integer(i, "candidate_id");
    r.arch = candidates.text(i, "arch");
    r.rung = static_cast<int32_t>(candidates.integer(i, "rung"));
    r.stage = static_cast<int32_t>(candidates.integer(i, "stage"));
    r.fidelity = candidates.real(i, "fidelity");
    r.objective = candidates.real(i, "objective");
    r.valid = candidates.integer(i, "valid") != 0;
    r.status = parse_candidate_status(candidates.text(i, "status"));
    for (const auto& task : tasks) r.task_scores.push_back(candidates.real(i, "task_" + task));
    r.validation_loss = candidates.real(i, "validation_loss");
    r.parameters = candidates.integer(i, "parameters");
    r.non_embedding_parameters = candidates.integer(i, "non_embedding_parameters");
    r.flops_per_token = candidates.real(i, "flops_per_token");
    r.steps = candidates.integer(i, "steps");
    r.tokens = candidates.integer(i, "tokens");
    r.seconds = candidates.real(i, "seconds");
    r.started_unix = candidates.real(i, "started_unix");
    r.finished_unix = candidates.real(i, "finished_unix");
    r.team = static_cast<int32_t>(candidates.integer(i, "team"));
    r.error = candidates.text(i, "error");
    evaluation[{r.candidate_id, r.rung}] = record.results_.size();
    record.results_.push_back(std::move(r));
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto it = evaluation.find({runs.integer(i, "candidate_id"), runs.integer(i, "rung")});
    HNAS_CHECK(it != evaluation.end(), InputError, path << ": /search/runs row " << i << " has no candidate");
    record.results_[it->second].runs.push_back({runs.text(i, "label"), runs.real(i, "lr"), runs.real(i, "weight_decay"),
                                                train::parse_run_status(runs.text(i, "status")),
                                                runs.integer(i, "steps"), runs.real(i, "accuracy"),
                                                runs.real(i, "loss"), runs.real(i, "seconds")});
  }
  for (size_t i = 0; i < curves.size(); ++i) {
    const auto it = evaluation.find({curves.integer(i, "candidate_id"), curves.integer(i, "rung")});
    HNAS_CHECK(it != evaluation.end(), InputError, path << ": /search/curves row " << i << " has no candidate");
    record.results_[it->second].curve.push_back(
        {static_cast<int32_t>(curves.integer(i, "run")), curves.integer(i, "step"), curves.real(i, "loss")});
  }
  for (size_t i = 0; i < events.size(); ++i) {
    SearchEvent e;
    e.kind = events.text(i, "event") == "observe" ? SearchEvent::Kind::Observe : SearchEvent::Kind::Propose;
    e.candidate_id = events.integer(i, "candidate_id");
    e.proposal.genome = arch::Genome::parse(events.text(i, "arch"));
    e.proposal.rung = static_cast<int>(events.integer(i, "rung"));
    e.proposal.stage = static_cast<int>(events.integer(i, "stage"));
    e.proposal.reason = events.text(i, "reason");
    e.proposal.acquisition = events.real(i, "acquisition");
    e.outcome.objective = events.real(i, "objective");
    e.outcome.valid = events.integer(i, "valid") != 0;
    record.events_.push_back(std::move(e));
  }
  return record;
}

}  // namespace hnas::search
