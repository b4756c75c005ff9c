// SPDX-License-Identifier: Apache-2.0
// MPI behind owning handles: the MPI session (init/finalize), communicators (world,
// teams, node-local), the few collectives hnas needs, and the tagged point-to-point
// messages of the search's work queue. Every wait polls a non-blocking MPI call, so that
// a stall timeout can turn a peer that is stopped (SIGSTOP) or stuck into an error
// instead of a hang. Waits that may be long (a team's next task, a work-queue message)
// sleep between polls: on an oversubscribed node a spinning idle rank steals the core a
// training rank needs. Reductions first poll without sleeping, as blocking MPI does.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace hnas::dist {

/// Owns MPI_Init_thread (FUNNELED: only the main thread calls MPI) and MPI_Finalize.
/// If MPI is already initialised (e.g. by a test's main), it neither initialises nor
/// finalises. Create one in main before any other MPI use.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owns_ = false;
};

/// The library's version string, e.g. "Open MPI v4.1.4, ...", first line only.
std::string mpi_library_version();

/// How long any wait of this process's communicators (collectives, sends, receives, and so
/// the MPI gradient reducer's all-reduce) may go without completing before it throws
/// FatalError naming this rank, the operation and whom it waits for, e.g. "rank 0: no
/// progress for 30 s in all-reduce over a team of 2 ranks (world ranks 0-1); ...". 0, the
/// default, waits forever. Rank-local and process-wide: call it on every rank, once the
/// start-up is over (a slow start-up on rank 0 is not a stall). Throws ConfigError for a
/// negative or non-finite value.
///
/// After such a FatalError the abandoned operation may still complete when the peer
/// resumes, writing into its buffers: the job must end (abort_job), and the communicator
/// must not be used again.
void set_stall_timeout(double seconds);
/// The stall timeout in seconds, 0 for none. Rank-local.
double stall_timeout();

/// Sets the stall timeout for its lifetime and restores the previous one after. For waits
/// that are long by design because the peer is busy, not stuck: a team leader waiting for
/// its next task, team members waiting for their leader's broadcast, the last barrier
/// while other teams finish. Rank-local.
///
///   dist::ScopedStallTimeout idle(0);  // the coordinator may be training for minutes
///   auto assignment = world.receive(0, kTagAssignment);
class ScopedStallTimeout {
 public:
  explicit ScopedStallTimeout(double seconds);
  ~ScopedStallTimeout();
  ScopedStallTimeout(const ScopedStallTimeout&) = delete;
  ScopedStallTimeout& operator=(const ScopedStallTimeout&) = delete;

 private:
  double previous_;
};

/// A received message: its bytes, source and tag.
struct Message {
  std::string bytes;
  int source = -1;
  int tag = -1;
};

/// A non-blocking collective that has been started and not yet finished: a bucket of
/// gradients being summed or reduce-scattered while the backward pass goes on beside it,
/// or a parameter bucket being all-gathered. Movable; waits in its destructor if nobody
/// did, so that MPI never writes into freed memory.
class PendingCollective {
 public:
  PendingCollective() = default;
  PendingCollective(MPI_Request request, MPI_Comm comm, const char* operation)
      : request_(request), comm_(comm), operation_(operation) {}
  ~PendingCollective();
  PendingCollective(PendingCollective&& other) noexcept;
  PendingCollective& operator=(PendingCollective&& other) noexcept;
  PendingCollective(const PendingCollective&) = delete;
  PendingCollective& operator=(const PendingCollective&) = delete;

  /// Lets MPI progress; true once the operation is complete (then wait() returns at once).
  bool test();
  /// Blocks until the operation is complete, honouring the stall timeout.
  void wait();
  bool active() const { return request_ != MPI_REQUEST_NULL; }

 private:
  MPI_Request request_ = MPI_REQUEST_NULL;
  MPI_Comm comm_ = MPI_COMM_NULL;
  const char* operation_ = "";
};

/// An MPI communicator. World is borrowed; communicators made by split() and dup() are
/// owned and freed on destruction. Movable, not copyable. Calls documented "collective"
/// must be made by every rank of the communicator in the same order. Every wait honours
/// the stall timeout (set_stall_timeout) and then throws FatalError.
class Communicator {
 public:
  /// MPI_COMM_WORLD (borrowed).
  static Communicator world();

  Communicator() = default;
  ~Communicator();
  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&& other) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  /// Ranks with the same color form one communicator, ordered by key. Collective.
  Communicator split(int color, int key) const;
  /// The ranks sharing this node's memory (for the local rank / GPU index). Collective.
  Communicator split_node_local() const;
  /// The same ranks in a new communicator (its messages never mix with this one's). Collective.
  Communicator dup() const;

  /// Collective.
  void barrier() const;
  /// Broadcasts `bytes` bytes at `data` from `root`. Collective.
  void broadcast(void* data, size_t bytes, int root) const;
  /// Broadcasts a string of any length from `root`, sleeping between polls while waiting
  /// (the root's message may come much later, e.g. the next task of a team). Collective.
  void broadcast_string(std::string& text, int root) const;
  /// Element-wise sums over the communicator, in place. Collective.
  void all_reduce_sum(float* values, size_t count) const;
  void all_reduce_sum(double* values, size_t count) const;
  /// Starts an in-place sum of `count` floats (at most 2^31 - 1) and returns at once; the
  /// buffer must stay untouched until the PendingCollective completes. Collective (every
  /// rank starts the same operations in the same order).
  PendingCollective start_all_reduce_sum(float* values, size_t count) const;
  /// Starts the sum of `values` (size() x `shard_count` floats) over the ranks, of which
  /// rank r receives part r (floats [r x shard_count, (r + 1) x shard_count)) in `shard`.
  /// Both buffers stay untouched until it completes. Collective.
  PendingCollective start_reduce_scatter_sum(const float* values, float* shard, size_t shard_count) const;
  /// Starts an in-place all-gather: rank r contributes floats [r x shard_count, (r + 1) x
  /// shard_count) of `values` and every rank ends with all size() parts. Collective.
  PendingCollective start_all_gather(float* values, size_t shard_count) const;
  /// Rank r's `count` floats at `values` land at [r x count, (r + 1) x count) of `gathered`
  /// on `root` (which needs size() x count floats; ignored elsewhere). Collective.
  void gather(const float* values, size_t count, float* gathered, int root) const;
  /// Maximum over the communicator. Collective.
  int64_t all_reduce_max(int64_t value) const;
  /// Minimum over the communicator. Collective.
  int64_t all_reduce_min(int64_t value) const;

  /// Sends `bytes` to `dest` with `tag`, waiting until the buffer can be reused (for a
  /// large message, until `dest` receives it). Rank-local.
  void send(const std::string& bytes, int dest, int tag) const;
  /// A message from `source` (or MPI_ANY_SOURCE) with `tag` (or MPI_ANY_TAG) if one is
  /// waiting, else nullopt at once. A message that has arrived is then received whole.
  std::optional<Message> try_receive(int source, int tag) const;
  /// Waits (polling with sleeps) for a message from `source` with `tag`.
  Message receive(int source, int tag) const;

 private:
  Communicator(MPI_Comm comm, bool owned);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0;
  int size_ = 1;
};

/// Runs `work` on every rank of `comm` and agrees on its outcome (collective): if any rank
/// threw an hnas::Error, every rank throws CollectiveError with the message and exit code
/// of the lowest failing rank (prefixed "[rank N] " when N != 0). Use it around start-up
/// checks (configuration, input files, run directory) so that a bad input ends the job
/// cleanly with one message instead of an abort or a hang.
void agree_on_errors(const Communicator& comm, const std::function<void()>& work);

/// Ends the whole job now: prints nothing (the caller has), calls MPI_Abort on the world
/// when MPI is initialised and the job has more than one rank, else std::exit.
[[noreturn]] void abort_job(int exit_code);

/// Little-endian-agnostic (same-binary) serialisation of messages between ranks.
class MessageWriter {
 public:
  template <typename T>
  MessageWriter& put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);
    return *this;
  }
  MessageWriter& put_string(const std::string& text);
  template <typename T>
  MessageWriter& put_vector(const std::vector<T>& values) {
    put<uint64_t>(values.size());
    for (const auto& v : values) put(v);
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class MessageReader {
 public:
  explicit MessageReader(const std::string& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    take(&value, sizeof value);
    return value;
  }
  std::string get_string();
  template <typename T>
  std::vector<T> get_vector() {
    std::vector<T> values(get<uint64_t>());
    for (auto& v : values) v = get<T>();
    return values;
  }

 private:
  void take(void* out, size_t n);
  const std::string& bytes_;
  size_t offset_ = 0;
};

}  // namespace hnas::dist
