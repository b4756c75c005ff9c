// MPI tests of the stage layer: the RunContext every job builds and the order in which
// run_stages runs (and skips) stages. Run under mpiexec with 2 ranks.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "hnas/core/error.hpp"
#include "hnas/pipeline/run_context.hpp"
#include "hnas/pipeline/stage.hpp"

namespace {

using namespace hnas;

// A stage that records what happened to it; complete() and run() give fixed answers.
class FakeStage final : public pipeline::Stage {
 public:
  FakeStage(std::vector<std::string>& log, std::string name, bool complete, int code)
      : log_(log), name_(std::move(name)), complete_(complete), code_(code) {}
  const char* name() const override { return name_.c_str(); }
  bool needs_run_dir() const override { return true; }
  bool complete(const pipeline::RunContext&) const override { return complete_; }
  int run(pipeline::RunContext& context) override {
    context.world().barrier();  // a stage is collective: every rank runs it
    log_.push_back(name_);
    return code_;
  }

 private:
  std::vector<std::string>& log_;
  std::string name_;
  bool complete_;
  int code_;
};

// One scratch directory name agreed by the ranks (rank 0's).
std::string shared_directory(const pipeline::RunContext& context, const std::string& leaf) {
  std::string path = (std::filesystem::temp_directory_path() / ("hnas-stages-" + std::to_string(getpid()))).string();
  context.world().broadcast_string(path, 0);
  return path + "/" + leaf;
}

pipeline::JobOptions job(const std::string& run_dir = "") {
  pipeline::JobOptions o;
  o.threads = 1;
  o.run_dir = run_dir;
  return o;
}

TEST(RunStages, skips_complete_stages_and_stops_at_the_first_that_does_not_finish) {
  pipeline::RunContext context(job("/nonexistent/run"));  // named, never taken: the fakes write nothing
  std::vector<std::string> log;
  std::vector<std::unique_ptr<pipeline::Stage>> stages;
  stages.push_back(std::make_unique<FakeStage>(log, "search", true, kExitOk));
  stages.push_back(std::make_unique<FakeStage>(log, "aggregate", false, kExitOk));
  stages.push_back(std::make_unique<FakeStage>(log, "pretrain", false, kExitResumable));
  stages.push_back(std::make_unique<FakeStage>(log, "summary", false, kExitOk));
  EXPECT_EQ(pipeline::run_stages(context, stages), kExitResumable);
  EXPECT_EQ(log, (std::vector<std::string>{"aggregate", "pretrain"}));
}

TEST(RunContext, knows_the_ranks_place_on_its_node) {
  pipeline::RunContext context(job());
  EXPECT_EQ(context.world().size(), 2);
  EXPECT_GE(context.node_rank(), 0);
  EXPECT_LT(context.node_rank(), context.ranks_on_node());
  EXPECT_EQ(context.gpu(), -1);
  EXPECT_EQ(context.threads(), 1);
  EXPECT_EQ(context.provenance().world_size, 2);
  EXPECT_FALSE(context.provenance().hostname.empty());
}

TEST(RunContext, holds_its_run_directory_against_a_second_job) {
  std::string dir;
  {
    pipeline::RunContext scratch(job());
    dir = shared_directory(scratch, "held");
  }
  pipeline::RunContext first(job(dir));
  EXPECT_FALSE(std::filesystem::exists(dir));  // taken only once a stage has validated its inputs
  dist::agree_on_errors(first.world(), [&] {
    if (first.world().rank() == 0) first.hold_run_directory();
  });
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  try {
    pipeline::RunContext second(job(dir));  // what a second job on the same directory would do
    dist::agree_on_errors(second.world(), [&] {
      if (second.world().rank() == 0) second.hold_run_directory();
    });
    ADD_FAILURE() << "a second RunContext took a held run directory";
  } catch (const CollectiveError& e) {  // every rank gets the refusal, not only rank 0
    EXPECT_EQ(e.exit_code(), kExitConfig);
    EXPECT_NE(std::string(e.what()).find("in use by another hnas job"), std::string::npos) << e.what();
  }
}

TEST(RunContext, a_dry_run_leaves_no_run_directory) {
  std::string dir;
  {
    pipeline::RunContext scratch(job());
    dir = shared_directory(scratch, "dry");
  }
  auto options = job(dir);
  options.dry_run = true;
  pipeline::RunContext context(options);
  if (context.world().rank() == 0) context.hold_run_directory();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RunStages, a_stage_that_keeps_output_needs_a_run_directory) {
  pipeline::RunContext context(job());
  std::vector<std::string> log;
  std::vector<std::unique_ptr<pipeline::Stage>> stages;
  stages.push_back(std::make_unique<FakeStage>(log, "search", false, kExitOk));
  EXPECT_THROW(pipeline::run_stages(context, stages), InternalError);
  EXPECT_TRUE(log.empty());
}

}  // namespace

int main(int argc, char** argv) {
  hnas::dist::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const auto world = hnas::dist::Communicator::world();
  if (world.rank() != 0) {  // one report, from rank 0; failures elsewhere still fail the exit code
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = world.all_reduce_max(static_cast<int64_t>(RUN_ALL_TESTS() != 0)) != 0;
  if (world.rank() == 0) {
    std::error_code ignored;
    std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("hnas-stages-" + std::to_string(getpid())),
                                ignored);
  }
  return failed;
}
