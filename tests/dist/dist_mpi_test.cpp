// MPI tests of the dist module and of data-parallel training; run under mpiexec with 2
// and 4 ranks. Every rank runs every test; a failure on any rank fails the program.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

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

TEST(Communicator, large_sums_travel_in_pieces_and_add_every_element) {
  // Over the 2^18-element minimum piece: four pieces in flight, the last one shorter.
  std::vector<float> values((size_t{1} << 20) + 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1000) + world().rank();
  world().all_reduce_sum(values.data(), values.size());
  const float n = static_cast<float>(world().size()), ranks = n * (n - 1) / 2;
  for (size_t i = 0; i < values.size(); i += 4099) ASSERT_EQ(values[i], n * (i % 1000) + ranks) << "element " << i;
  EXPECT_EQ(values.back(), n * ((values.size() - 1) % 1000) + ranks);
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

// The non-blocking bucket collectives of data parallelism and ZeRO-1, started together as
// the backward pass starts them: each rank's values are rank + 1 + element index.
TEST(MpiReducer, bucket_sum_reduce_scatter_and_all_gather_complete_out_of_order) {
  const auto reducer = dist::make_mpi_reducer(world());
  const int64_t n = world().size(), rank = world().rank(), part = 6;
  const auto mine = [&](int64_t numel) { return torch::arange(numel, torch::kFloat32) + static_cast<float>(rank + 1); };
  const auto summed = [&](int64_t numel) {  // sum over ranks of (r + 1 + i)
    return torch::arange(numel, torch::kFloat32) * static_cast<float>(n) + static_cast<float>(n * (n + 1) / 2);
  };
  auto flat_sum = mine(part * n), flat_scatter = mine(part * n), shard = torch::zeros({part});
  auto gathered = torch::zeros({part * n});
  gathered.narrow(0, rank * part, part).fill_(static_cast<float>(rank));
  auto sum = reducer->start_sum(flat_sum);
  auto scatter = reducer->start_reduce_scatter(flat_scatter, shard);
  auto gather = reducer->start_all_gather(gathered);
  gather->wait();  // in another order than started: each completes on its own
  scatter->wait();
  sum->wait();
  EXPECT_TRUE(torch::equal(flat_sum, summed(part * n)));
  EXPECT_TRUE(torch::equal(shard, summed(part * n).narrow(0, rank * part, part)));
  for (int64_t r = 0; r < n; ++r)
    EXPECT_TRUE(torch::equal(gathered.narrow(0, r * part, part), torch::full({part}, static_cast<float>(r))));
  EXPECT_TRUE(sum->test());
  // A bucket that does not split into equal parts is a programming error, said so.
  if (n > 1) {
    EXPECT_THROW(reducer->start_reduce_scatter(torch::zeros({part * n + 1}), shard), InternalError);
  }
}

TEST(Communicator, gather_puts_every_ranks_part_in_rank_order_on_the_root) {
  const int n = world().size();
  std::vector<float> values(3, static_cast<float>(world().rank() * 10));
  std::vector<float> all(world().rank() == 0 ? 3 * n : 0);
  world().gather(values.data(), values.size(), world().rank() == 0 ? all.data() : nullptr, 0);
  if (world().rank() != 0) return;
  for (int r = 0; r < n; ++r) {
    for (int i = 0; i < 3; ++i) EXPECT_EQ(all[static_cast<size_t>(3 * r + i)], 10.0f * r);
  }
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
  const auto team = train::train_model(shared, shared_data, nullptr, options(25), {reducer.get(), nullptr});

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
  int polls = 0;
  const auto stop = [&] { return world().rank() == world().size() - 1 && ++polls > 7; };
  const auto result = train::train_model(model, data, nullptr, options(50), {reducer.get(), stop});
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
  const auto result = train::train_model(model, data, nullptr, o, {reducer.get(), nullptr});
  EXPECT_EQ(result.status, train::RunStatus::Diverged);
  EXPECT_EQ(world().all_reduce_max(result.steps), world().all_reduce_min(result.steps));
}

// The stall timeout. A test that makes a rank stall does it on a communicator of its own
// and then leaves that communicator alone: an operation given up on one rank is still
// pending there, and completes in the background once the late rank joins (the others'
// later MPI calls progress it), so the communicator, and any buffer such an operation
// writes, is leaked rather than reused or freed. Every rank then meets the late one in a
// world barrier without a timeout.

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// Puts the stall timeout back to 0 when a test ends, however it ends.
struct NoStallTimeoutAfter {
  ~NoStallTimeoutAfter() { dist::set_stall_timeout(0); }
};

constexpr int kLateRank = 1;
constexpr auto kLateBy = std::chrono::seconds(3);

// World rank 1 joins `operation` on `side` 3 s late while the stall timeout is 1 s: every
// other rank of `side` must give up after 1-2 s with a FatalError that names itself and
// contains `expected`; ranks outside `side`'s group with rank 1 just complete it.
void expect_stall_reported(const dist::Communicator& side, bool with_late_rank,
                           const std::function<void(const dist::Communicator&)>& operation,
                           const std::string& expected) {
  NoStallTimeoutAfter restore;
  world().barrier();  // the 3 s count from here on every rank
  dist::set_stall_timeout(1.0);
  const auto start = Clock::now();
  const int rank = world().rank();
  if (rank == kLateRank) {
    std::this_thread::sleep_for(kLateBy);
    EXPECT_NO_THROW(operation(side)) << "the late rank completes the operation the others gave up on";
  } else if (!with_late_rank) {
    EXPECT_NO_THROW(operation(side)) << "rank " << rank << ": its communicator has no late rank";
  } else {
    try {
      operation(side);
      ADD_FAILURE() << "rank " << rank << ": expected a FatalError for the stall";
    } catch (const FatalError& e) {
      const double waited = seconds_since(start);
      const std::string what = e.what();
      if (rank == 0) std::printf("  reported after %.2f s: %s\n", waited, e.what());
      EXPECT_EQ(what.rfind("rank " + std::to_string(rank) + ": no progress for 1 s ", 0), 0u) << what;
      EXPECT_NE(what.find(expected), std::string::npos) << what;
      EXPECT_NE(what.find("the job ends"), std::string::npos) << what;
      EXPECT_GE(waited, 0.95) << what;
      EXPECT_LT(waited, 2.5) << what;
    }
  }
  dist::set_stall_timeout(0);
  world().barrier();
}

// "all 2 ranks of the job" at 2 ranks, "a team of 2 ranks (world ranks 0-1)" at 4.
std::string first_team_of_two() {
  return world().size() == 2 ? "all 2 ranks of the job" : "a team of 2 ranks (world ranks 0-1)";
}

TEST(StallTimeout, rejects_negative_and_non_finite_values) {
  EXPECT_THROW(dist::set_stall_timeout(-1), ConfigError);
  EXPECT_THROW(dist::set_stall_timeout(std::nan("")), ConfigError);
  EXPECT_THROW(dist::set_stall_timeout(HUGE_VAL), ConfigError);
  EXPECT_EQ(dist::stall_timeout(), 0.0);
}

TEST(StallTimeout, waits_that_finish_within_it_do_not_throw) {
  NoStallTimeoutAfter restore;
  dist::set_stall_timeout(2.0);
  const auto late = [] {
    if (world().rank() == kLateRank) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  };
  late();
  EXPECT_NO_THROW(world().barrier());
  late();
  std::vector<double> values{1.0};
  EXPECT_NO_THROW(world().all_reduce_sum(values.data(), values.size()));
  EXPECT_DOUBLE_EQ(values[0], world().size());
  late();
  EXPECT_EQ(world().all_reduce_max(world().rank()), world().size() - 1);
  late();
  std::string text = world().rank() == 0 ? std::string(100000, 'x') : "";
  EXPECT_NO_THROW(world().broadcast_string(text, 0));
  EXPECT_EQ(text.size(), 100000u);
  const auto reducer = dist::make_mpi_reducer(world());
  auto a = torch::zeros({3}, torch::requires_grad());
  a.mutable_grad() = torch::ones({3});
  late();
  EXPECT_NO_THROW(reducer->sum_gradients({a}));
  EXPECT_TRUE(torch::equal(a.grad(), torch::full({3}, static_cast<float>(world().size()))));
  if (world().rank() == kLateRank) {
    late();
    world().send(std::string(200000, 'y'), 0, 5);  // past the eager limit: waits for the receive
  } else if (world().rank() == 0) {
    dist::Message message;
    EXPECT_NO_THROW(message = world().receive(kLateRank, 5));
    EXPECT_EQ(message.bytes.size(), 200000u);
  }
  EXPECT_NO_THROW(world().barrier());
}

TEST(StallTimeout, zero_waits_forever_and_a_scope_overrides_it) {
  NoStallTimeoutAfter restore;
  dist::set_stall_timeout(0.5);
  {
    dist::ScopedStallTimeout idle(0);
    EXPECT_EQ(dist::stall_timeout(), 0.0);
    if (world().rank() == kLateRank) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_NO_THROW(world().barrier());
  }
  EXPECT_EQ(dist::stall_timeout(), 0.5);
  dist::set_stall_timeout(0);
  if (world().rank() == kLateRank) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_NO_THROW(world().barrier());
}

TEST(StallTimeout, a_late_rank_is_reported_in_an_all_reduce) {
  // Teams of two: at 4 ranks the second team completes undisturbed.
  const auto* team = new dist::Communicator(world().split(world().rank() / 2, world().rank()));  // leaked, see above
  expect_stall_reported(
      *team, world().rank() < 2, [](const dist::Communicator& c) { EXPECT_EQ(c.all_reduce_max(c.rank() + 1), 2); },
      "in all-reduce over " + first_team_of_two() + "; a rank is stopped or stuck");
}

TEST(StallTimeout, a_late_rank_is_reported_in_a_barrier) {
  const auto* side = new dist::Communicator(world().dup());  // leaked, see above
  expect_stall_reported(
      *side, true, [](const dist::Communicator& c) { c.barrier(); },
      "in a barrier over all " + std::to_string(world().size()) + " ranks of the job");
}

TEST(StallTimeout, a_late_rank_is_reported_in_the_mpi_reducers_gradient_all_reduce) {
  // The reducer, its gradients and its flat buffer are written when the abandoned
  // all-reduce completes: all leaked with the communicator.
  const auto* team = new dist::Communicator(world().split(world().rank() / 2, world().rank()));
  auto* reducer = dist::make_mpi_reducer(*team).release();
  auto* parameter = new torch::Tensor(torch::zeros({1000}, torch::requires_grad()));
  parameter->mutable_grad() = torch::ones({1000});
  expect_stall_reported(
      *team, world().rank() < 2,
      [&](const dist::Communicator&) {
        reducer->sum_gradients({*parameter});
        EXPECT_TRUE(torch::equal(parameter->grad(), torch::full({1000}, 2.0f)));
      },
      "in all-reduce over " + first_team_of_two());
}

TEST(StallTimeout, a_late_sender_is_reported_by_the_receiver) {
  const auto* side = new dist::Communicator(world().dup());  // leaked, see above
  NoStallTimeoutAfter restore;
  world().barrier();
  dist::set_stall_timeout(1.0);
  const auto start = Clock::now();
  if (world().rank() == kLateRank) {
    std::this_thread::sleep_for(kLateBy);
    side->send("late", 0, 5);
  } else if (world().rank() == 0) {
    try {
      side->receive(kLateRank, 5);
      ADD_FAILURE() << "expected a FatalError for the stall";
    } catch (const FatalError& e) {
      const std::string what = e.what();
      std::printf("  reported after %.2f s: %s\n", seconds_since(start), e.what());
      EXPECT_EQ(what.rfind("rank 0: no progress for 1 s waiting for a message from world rank 1 (tag 5); ", 0), 0u)
          << what;
      EXPECT_GE(seconds_since(start), 0.95);
      EXPECT_LT(seconds_since(start), 2.5);
    }
    // A receive gives up without leaving anything pending: the message can still be taken.
    dist::set_stall_timeout(0);
    EXPECT_EQ(side->receive(kLateRank, 5).bytes, "late");
  }
  dist::set_stall_timeout(0);
  world().barrier();
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
