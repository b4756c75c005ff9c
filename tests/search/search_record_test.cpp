#include <gtest/gtest.h>

#include <cmath>

#include "hnas/core/error.hpp"
#include "hnas/search/search_record.hpp"
#include "support/test_support.hpp"

namespace {

using namespace hnas;
using search::CandidateResult;
using search::CandidateStatus;
using search::SearchEvent;
using search::SearchRecord;
using search::SearchStatus;

CandidateResult sample_result(int64_t id, const std::string& arch, int rung) {
  CandidateResult r;
  r.candidate_id = id;
  r.arch = arch;
  r.rung = rung;
  r.stage = 1;
  r.fidelity = rung == 0 ? 1.0 / 3 : 1.0;
  r.status = CandidateStatus::Completed;
  r.valid = true;
  r.objective = 0.25 + 0.01 * static_cast<double>(id);
  r.task_scores = {0.5, 0.125};
  r.parameters = 12345;
  r.non_embedding_parameters = 11111;
  r.flops_per_token = 2.5e5;
  r.steps = 40;
  r.tokens = 40 * 64 * 32;
  r.seconds = 1.5;
  r.started_unix = 1.7e9;
  r.finished_unix = 1.7e9 + 1.5;
  r.team = 3;
  r.runs = {{"in-context-recall lr=0.003 wd=0", 3e-3, 0, train::RunStatus::Completed, 20, 0.5, 1.25, 0.7},
            {"compression lr=0.003 wd=0", 3e-3, 0, train::RunStatus::Diverged, 20, 0.125, 2.5, 0.8}};
  r.curve = {{0, 0, 2.75}, {0, 1, 2.5}, {1, 0, 3.0}};
  return r;
}

TEST(SearchRecord, results_and_events_survive_the_file_and_the_wire) {
  hnas::testing::TempDir dir;
  io::Provenance p;
  p.config = "task = in-context-recall\n[search]\nseed = 4\n";
  p.hnas_version = "0.1.0";
  p.git_revision = "abc";
  p.started_utc = "2026-11-28T00:00:00Z";
  p.strategy = "bo";
  p.seed = 4;
  SearchRecord record({"in-context-recall", "compression"}, p);
  search::Proposal proposal{arch::Genome::parse("AMAM"), 0, 1, "log-EI", -2.5};
  record.add_event({SearchEvent::Kind::Propose, 0, proposal, {}});
  record.add_event({SearchEvent::Kind::Observe, 0, proposal, {0.25, true}});
  record.add_event({SearchEvent::Kind::Propose, 1, {arch::Genome::parse("MMAA"), 1, 1, "promoted", NAN}, {}});
  record.add_result(sample_result(0, "AMAM", 0));
  auto failed = sample_result(1, "MMAA", 1);
  failed.status = CandidateStatus::Failed;
  failed.valid = false;
  failed.objective = NAN;
  failed.error = "fault injected\nsecond line";
  failed.runs.clear();
  failed.curve.clear();
  record.add_result(failed);
  record.set_status(SearchStatus::Stopped);
  record.set_summary("spearman_rung0_rung1", 0.5);
  const std::string path = dir.file("results.h5");
  record.save(path);

  const auto loaded = SearchRecord::load(path);
  EXPECT_EQ(loaded.status(), SearchStatus::Stopped);
  EXPECT_EQ(loaded.task_names(), (std::vector<std::string>{"in-context-recall", "compression"}));
  EXPECT_EQ(loaded.provenance().config, p.config);
  EXPECT_EQ(loaded.provenance().seed, 4);
  ASSERT_EQ(loaded.results().size(), 2u);
  const auto& a = loaded.results()[0];
  const auto b = sample_result(0, "AMAM", 0);
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_DOUBLE_EQ(a.objective, b.objective);
  EXPECT_EQ(a.task_scores, b.task_scores);
  EXPECT_EQ(a.team, 3);
  EXPECT_DOUBLE_EQ(a.fidelity, 1.0 / 3);
  ASSERT_EQ(a.runs.size(), 2u);
  EXPECT_EQ(a.runs[1].status, hnas::train::RunStatus::Diverged);
  EXPECT_EQ(a.runs[1].label, "compression lr=0.003 wd=0");
  ASSERT_EQ(a.curve.size(), 3u);
  EXPECT_EQ(a.curve[2].run, 1);
  EXPECT_DOUBLE_EQ(a.curve[1].loss, 2.5);
  const auto& f = loaded.results()[1];
  EXPECT_EQ(f.status, CandidateStatus::Failed);
  EXPECT_FALSE(f.valid);
  EXPECT_TRUE(std::isnan(f.objective));
  EXPECT_EQ(f.error, "fault injected second line");  // the table stores one ASCII line
  ASSERT_EQ(loaded.events().size(), 3u);
  EXPECT_EQ(loaded.events()[1].kind, SearchEvent::Kind::Observe);
  EXPECT_EQ(loaded.events()[1].outcome.valid, true);
  EXPECT_DOUBLE_EQ(loaded.events()[1].outcome.objective, 0.25);
  EXPECT_EQ(loaded.events()[2].proposal.genome.to_string(), "MMAA");
  EXPECT_EQ(loaded.events()[2].proposal.rung, 1);
  EXPECT_EQ(loaded.events()[2].proposal.reason, "promoted");
  EXPECT_DOUBLE_EQ(loaded.events()[0].proposal.acquisition, -2.5);

  // The message a team sends to rank 0 carries the same content.
  const auto wire = search::deserialize_result(search::serialize(b));
  EXPECT_EQ(search::serialize(wire), search::serialize(b));
  EXPECT_EQ(wire.runs[0].label, b.runs[0].label);
  EXPECT_EQ(wire.curve.size(), b.curve.size());
}

TEST(SearchRecord, a_file_that_is_not_a_search_record_is_an_input_error) {
  hnas::testing::TempDir dir;
  EXPECT_THROW(SearchRecord::load(dir.file("missing.h5")), InputError);
}

}  // namespace
