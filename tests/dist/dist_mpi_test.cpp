// MPI tests of the dist module and of data-parallel training; run under mpiexec with 2
// and 4 ranks. Every rank runs every test; a failure on any rank fails the program.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "hnas/core/error.hpp"
#include "hnas/dist/communicator.hpp"
#include "hnas/dist/gradient_reducer.hpp"
#include "hnas/train/metrics.hpp"
#include "hnas/train/trainer.hpp"
#include "support/tiny_training.hpp"

namespace {

using namespace hnas;

const dist::Communicator& world() {
  static const auto comm = dist::Communicator::world();
  return comm;
}

TEST(Communicator, splits_into_teams_and_broadcasts_within_them) {
  ASSERT_GE(world().size(), 2) << "run under mpiexec -n 2 or more";
  const int team_size = 2;
  const auto team = world().split(world().rank() / team_size, world().rank());
  EXPECT_EQ(team.size(), team_size);
  EXPECT_EQ(team.rank(), world().rank() % team_size);
  std::string text = team.rank() == 0 ? "team " + std::to_string(world().rank() / team_size) : "";
  team.broadcast_string(text, 0);
  EXPECT_EQ(text, "team " + std::to_string(world().rank() / team_size));
  std::vector<double> values{1.0, static_cast<double>(world().rank())};
  world().all_reduce_sum(values.data(), values.size());
  EXPECT_DOUBLE_EQ(values[0], world().size());
  EXPECT_DOUBLE_EQ(values[1], world().size() * (world().size() - 1) / 2.0);
  EXPECT_EQ(world().all_reduce_max(world().rank()), world().size() - 1);
  EXPECT_EQ(world().all_reduce_min(world().rank()), 0);
  const auto node = world().split_node_local();
  EXPECT_EQ(node.size(), world().size());  // one machine in CI
}

TEST(Communicator, tagged_messages_reach_rank_zero_from_every_rank) {
  if (world().rank() != 0) {
    dist::MessageWriter w;
    w.put<int32_t>(world().rank()).put_string("hello").put_vector(std::vector<double>{1.5, 2.5});
    world().send(w.bytes(), 0, 7);
  } else {
    std::vector<int> seen;
    for (int i = 1; i < world().size(); ++i) {
      const auto message = world().receive(MPI_ANY_SOURCE, 7);
      dist::MessageReader r(message.bytes);
      EXPECT_EQ(r.get<int32_t>(), message.source);
      EXPECT_EQ(r.get_string(), "hello");
      EXPECT_EQ(r.get_vector<double>(), (std::vector<double>{1.5, 2.5}));
      seen.push_back(message.source);
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(world().size() - 1));
    EXPECT_FALSE(world().try_receive(MPI_ANY_SOURCE, 7).has_value());
  }
  world().barrier();
}

TEST(AgreeOnErrors, every_rank_throws_the_lowest_failing_ranks_message) {
  const int failing = world().size() - 1;
  try {
    dist::agree_on_errors(world(), [&] {
      if (world().rank() == failing) throw ConfigError("search.num_layers must be >= 1");
    });
    FAIL() << "expected CollectiveError";
  } catch (const CollectiveError& e) {
    EXPECT_EQ(std::string(e.what()), "[rank " + std::to_string(failing) + "] search.num_layers must be >= 1");
    EXPECT_EQ(e.exit_code(), kExitConfig);
  }
  EXPECT_NO_THROW(dist::agree_on_errors(world(), [] {}));
}

TEST(MpiReducer, sums_gradients_and_materialises_missing_ones) {
  const auto reducer = dist::make_mpi_reducer(world());
  auto a = torch::zeros({3, 4}, torch::requires_grad());
  auto b = torch::zeros({5}, torch::requires_grad());
  a.mutable_grad() = torch::full({3, 4}, static_cast<float>(world().rank() + 1));
  if (world().rank() == 0) b.mutable_grad() = torch::arange(5, torch::kFloat32);
  reducer->sum_gradients({a, b});
  const double n = world().size();
  EXPECT_TRUE(torch::allclose(a.grad(), torch::full({3, 4}, static_cast<float>(n * (n + 1) / 2))));
  ASSERT_TRUE(b.grad().defined());
  EXPECT_TRUE(torch::equal(b.grad(), torch::arange(5, torch::kFloat32)));

  auto c = torch::full({4}, static_cast<float>(world().rank()));
  reducer->broadcast_from_leader({c});
  EXPECT_TRUE(torch::equal(c, torch::zeros({4})));
}

TEST(MetricsAccumulator, shares_of_the_batches_summed_over_a_team_equal_all_batches_on_one_rank) {
  const auto reducer = dist::make_mpi_reducer(world());
  std::vector<train::BatchMetrics> batches;
  for (int b = 0; b < 7; ++b)  // not a multiple of the team size
    batches.push_back({1.5 * b + 0.25, 10 + b, 3 + b, 0.1 * b, 1.0 + b});
  train::MetricsAccumulator all, share;
  for (size_t b = 0; b < batches.size(); ++b) {
    all.add(batches[b], 4 + static_cast<int64_t>(b));
    if (static_cast<int>(b) % world().size() == world().rank()) share.add(batches[b], 4 + static_cast<int64_t>(b));
  }
  share.sum_over(reducer.get());
  EXPECT_EQ(share.scored_tokens(), all.scored_tokens());
  EXPECT_DOUBLE_EQ(share.loss(), all.loss());
  EXPECT_DOUBLE_EQ(share.micro_accuracy(), all.micro_accuracy());
  EXPECT_DOUBLE_EQ(share.macro_accuracy(), all.macro_accuracy());
  EXPECT_DOUBLE_EQ(share.mean_batch_perplexity(), all.mean_batch_perplexity());
}

// Every rank draws the same global batches (seed 11), with unscored positions spread
// unevenly over the ranks' rows.
hnas::testing::PatternBatches pattern_batches() { return hnas::testing::PatternBatches(11, 4); }

model::HybridModel tiny_model(uint64_t seed) { return hnas::testing::tiny_model(seed, "AMAM"); }

train::TrainerOptions options(int64_t steps) {
  train::TrainerOptions t;
  t.schedule.peak_lr = 3e-3;
  t.schedule.total_steps = steps;
  t.schedule.warmup_steps = 3;
  t.grad_clip = 1.0;
  t.weight_decay = 0.1;
  return t;
}

TEST(DataParallel, a_team_matches_one_rank_on_the_same_global_batch) {
  // Reference: this rank alone on the whole batch.
  auto alone = tiny_model(3);
  auto alone_data = pattern_batches();
  const auto reference = train::train_model(alone, alone_data, nullptr, options(25));

  // The team: every rank trains its slice; a different seed on other ranks proves the
  // start is broadcast from the leader.
  const auto reducer = dist::make_mpi_reducer(world());
  auto shared = tiny_model(world().rank() == 0 ? 3 : 99);
  auto shared_data = pattern_batches();
  auto o = options(25);
  o.reducer = reducer.get();
  const auto team = train::train_model(shared, shared_data, nullptr, o);

  ASSERT_EQ(team.status, train::RunStatus::Completed);
  ASSERT_EQ(team.curve.size(), reference.curve.size());
  for (size_t i = 0; i < team.curve.size(); ++i) {
    EXPECT_NEAR(team.curve[i].loss, reference.curve[i].loss, 2e-5 * std::abs(reference.curve[i].loss)) << "step " << i;
    EXPECT_NEAR(team.curve[i].grad_norm, reference.curve[i].grad_norm, 1e-4 * reference.curve[i].grad_norm)
        << "step " << i;
  }
  EXPECT_LT(team.curve.back().loss, 0.8 * team.curve.front().loss);  // it learned
  const auto p = alone->parameters(), q = shared->parameters();
  for (size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(torch::allclose(p[i], q[i], 1e-4, 1e-5)) << "parameter " << i;
  EXPECT_EQ(team.tokens, reference.tokens);  // the team counts the global batch
}

TEST(DataParallel, a_stop_seen_by_one_rank_stops_the_whole_team_at_the_same_step) {
  const auto reducer = dist::make_mpi_reducer(world());
  auto model = tiny_model(3);
  auto data = pattern_batches();
  auto o = options(50);
  o.reducer = reducer.get();
  int polls = 0;
  o.should_stop = [&] { return world().rank() == world().size() - 1 && ++polls > 7; };
  const auto result = train::train_model(model, data, nullptr, o);
  EXPECT_EQ(result.status, train::RunStatus::Stopped);
  EXPECT_EQ(result.steps, 7);
  EXPECT_EQ(world().all_reduce_max(result.steps), world().all_reduce_min(result.steps));
}

TEST(DataParallel, divergence_is_seen_by_every_rank) {
  const auto reducer = dist::make_mpi_reducer(world());
  auto model = tiny_model(3);
  auto data = pattern_batches();
  auto o = options(20);
  o.schedule.peak_lr = 1e30;  // the first update blows the weights up
  o.grad_clip = 0;
  o.reducer = reducer.get();
  const auto result = train::train_model(model, data, nullptr, o);
  EXPECT_EQ(result.status, train::RunStatus::Diverged);
  EXPECT_EQ(world().all_reduce_max(result.steps), world().all_reduce_min(result.steps));
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {  // one report, from rank 0; failures elsewhere still fail the exit code
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  torch::set_num_threads(1);
  int failed = RUN_ALL_TESTS() != 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed && rank != 0) std::fprintf(stderr, "[rank %d] some tests failed on this rank\n", rank);
  MPI_Finalize();
  return failed;
}
