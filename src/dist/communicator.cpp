// SPDX-License-Identifier: Apache-2.0
#include "hnas/dist/communicator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>

#include "hnas/core/check.hpp"
#include "hnas/core/error.hpp"
#include "hnas/core/log.hpp"

namespace hnas::dist {
namespace {

using Clock = std::chrono::steady_clock;

// MPI counts are int: large buffers go in slices below this many elements.
constexpr size_t kMaxCount = size_t{1} << 28;

// Seconds a wait may go without completing; 0: forever. Atomic only so that a thread
// that reads it (a watchdog, a test) never sees a torn value; MPI is called by one thread.
std::atomic<double> g_stall_timeout{0.0};

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// The world ranks of every member of `comm`, in `comm`'s rank order.
std::vector<int> world_ranks(MPI_Comm comm) {
  MPI_Group group = MPI_GROUP_NULL, world_group = MPI_GROUP_NULL;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  int size = 0;
  MPI_Group_size(group, &size);
  std::vector<int> ranks(static_cast<size_t>(size)), out(static_cast<size_t>(size));
  for (int i = 0; i < size; ++i) ranks[static_cast<size_t>(i)] = i;
  MPI_Group_translate_ranks(group, size, ranks.data(), world_group, out.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return out;
}

// "0-3", "0, 2, 4-7"; long lists are cut after a dozen runs.
std::string format_ranks(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  std::string out;
  int runs = 0;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (++runs > 12) return out + ", ...";
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += "-" + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

// "all 4 ranks of the job" or "a team of 2 ranks (world ranks 2-3)".
std::string describe_members(MPI_Comm comm) {
  const auto members = world_ranks(comm);
  int world_size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const auto n = static_cast<long>(members.size());
  if (n == world_size) return log::format("all %ld ranks of the job", n);
  return log::format("a team of %ld rank%s (world rank%s %s)", n, n == 1 ? "" : "s", n == 1 ? "" : "s",
                     format_ranks(members).c_str());
}

std::string world_rank_of(MPI_Comm comm, int rank) {
  const auto members = world_ranks(comm);
  if (rank < 0 || static_cast<size_t>(rank) >= members.size()) return "rank " + std::to_string(rank) + "?";
  return "world rank " + std::to_string(members[static_cast<size_t>(rank)]);
}

std::string describe_tag(int tag) { return tag == MPI_ANY_TAG ? "any tag" : "tag " + std::to_string(tag); }

// How a wait polls. A non-blocking collective advances only inside MPI calls, so a
// sleep between two MPI_Test calls delays every round of it: lock-step waits (on peers
// that are about to arrive: reductions, the gradient all-reduce) first poll without
// sleeping, yielding the core, as Open MPI's blocking collectives do, then sleep at most
// 0.5 ms. Idle waits (a team waiting for its next task, a message that may come much
// later) sleep from the start, up to 2 ms: long waits cost almost no CPU, and on an
// oversubscribed node a spinning idle rank steals the core a training rank needs.
struct Pace {
  std::chrono::microseconds spin;
  std::chrono::microseconds max_pause;
};
constexpr Pace kLockStep{std::chrono::milliseconds(50), std::chrono::microseconds(500)};
constexpr Pace kIdle{std::chrono::microseconds(0), std::chrono::microseconds(2000)};

// Polls `ready` at `pace`, sleeping from 20 us up. Past the stall timeout, throws
// FatalError with `waiting()`, which says what this rank waits for.
template <typename Ready, typename Waiting>
void wait_politely(const Pace& pace, Ready ready, Waiting waiting) {
  const double timeout = g_stall_timeout.load(std::memory_order_relaxed);
  const auto start = Clock::now();
  auto pause = std::chrono::microseconds(20);
  while (!ready()) {
    const auto waited = Clock::now() - start;
    if (timeout > 0 && std::chrono::duration<double>(waited).count() > timeout)
      throw FatalError(
          log::format("rank %d: no progress for %g s %s; a rank is stopped or stuck; the job ends "
                      "(raise run.stall_timeout if steps are this slow)",
                      world_rank(), timeout, waiting().c_str()));
    if (waited < pace.spin) {
      std::this_thread::yield();
      continue;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, pace.max_pause);
  }
}

// Waits for a started non-blocking operation (see wait_politely).
template <typename Waiting>
void wait_for(MPI_Request& request, Waiting waiting, const Pace& pace = kLockStep) {
  wait_politely(
      pace,
      [&] {
        int done = 0;
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        return done != 0;
      },
      waiting);
}

// Waits for collective `request` on `comm`; `operation` (e.g. "in all-reduce") names it.
void wait_for_collective(MPI_Request& request, MPI_Comm comm, const char* operation) {
  wait_for(request, [&] { return std::string(operation) + " over " + describe_members(comm); });
}

// The rank translation is made only when a stall is reported: broadcasts are frequent.
void wait_for_broadcast(MPI_Request& request, MPI_Comm comm, int root, const Pace& pace = kLockStep) {
  wait_for(
      request, [&] { return "in a broadcast from " + world_rank_of(comm, root) + " over " + describe_members(comm); },
      pace);
}

// A value that a non-blocking operation writes. When the wait for it is given up (a
// stall), the operation may still complete later, when the peer resumes: the value then
// stays allocated (leaked) rather than freed under MPI's feet.
template <typename T>
class RequestSlot {
 public:
  explicit RequestSlot(T value) : value_(new T(std::move(value))) {}
  ~RequestSlot() {
    if (completed_) delete value_;
  }
  RequestSlot(const RequestSlot&) = delete;
  RequestSlot& operator=(const RequestSlot&) = delete;
  T* get() { return value_; }
  /// The value, once the operation completed.
  T take() {
    completed_ = true;
    return std::move(*value_);
  }

 private:
  T* value_;
  bool completed_ = false;
};

template <typename T>
T all_reduce_scalar(MPI_Comm comm, T value, MPI_Datatype type, MPI_Op op) {
  RequestSlot<T> slot(value);
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, slot.get(), 1, type, op, comm, &request);
  wait_for_collective(request, comm, "in all-reduce");
  return slot.take();
}

// Open MPI's non-blocking in-place all-reduce is a reduce then a broadcast: large arrays
// go in a few pieces in flight together, which overlap the two (16 MiB at 2 ranks on
// one node: 6.8 ms in one piece, 5.7 ms in four; the blocking MPI_Allreduce takes 3.8).
constexpr size_t kMinPiece = size_t{1} << 18;
constexpr size_t kPiecesInFlight = 4;

template <typename T>
void all_reduce_sum_in_pieces(MPI_Comm comm, T* values, size_t count, MPI_Datatype type) {
  const size_t pieces = std::max((count + kMaxCount - 1) / kMaxCount, std::min(kPiecesInFlight, count / kMinPiece));
  const size_t per_piece = pieces > 0 ? (count + pieces - 1) / pieces : 0;
  std::vector<MPI_Request> requests;
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(count - done, per_piece);
    requests.emplace_back();
    MPI_Iallreduce(MPI_IN_PLACE, values + done, static_cast<int>(n), type, MPI_SUM, comm, &requests.back());
    done += n;
  }
  wait_politely(
      kLockStep,
      [&] {
        int done = 0;
        MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
        return done != 0;
      },
      [&] { return "in all-reduce over " + describe_members(comm); });
}

// Waits until every rank of `comm` has arrived: before the collectives that have no
// non-blocking form (MPI_Comm_split), so that a stopped rank is reported, not waited for.
void polled_barrier(MPI_Comm comm, const char* operation) {
  MPI_Request request;
  MPI_Ibarrier(comm, &request);
  wait_for_collective(request, comm, operation);
}

}  // namespace

void set_stall_timeout(double seconds) {
  HNAS_CHECK(std::isfinite(seconds) && seconds >= 0, ConfigError,
             "the stall timeout must be a finite number of seconds >= 0 (0: wait forever), got " << seconds);
  g_stall_timeout.store(seconds, std::memory_order_relaxed);
}

double stall_timeout() { return g_stall_timeout.load(std::memory_order_relaxed); }

ScopedStallTimeout::ScopedStallTimeout(double seconds) : previous_(stall_timeout()) { set_stall_timeout(seconds); }

ScopedStallTimeout::~ScopedStallTimeout() { g_stall_timeout.store(previous_, std::memory_order_relaxed); }

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  owns_ = true;
}

MpiSession::~MpiSession() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string version(text, static_cast<size_t>(length));
  const auto newline = version.find('\n');
  if (newline != std::string::npos) version.resize(newline);
  while (!version.empty() && (version.back() == ',' || version.back() == ' ' || version.back() == '\0'))
    version.pop_back();
  return version;
}

Communicator::Communicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  if (comm_ != MPI_COMM_NULL) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
}

Communicator Communicator::world() { return Communicator(MPI_COMM_WORLD, false); }

Communicator::~Communicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      owned_(std::exchange(other.owned_, false)),
      rank_(other.rank_),
      size_(other.size_) {}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    Communicator dying(std::move(*this));
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(other.owned_, false);
    rank_ = other.rank_;
    size_ = other.size_;
  }
  return *this;
}

// MPI_Comm_split has no non-blocking form: a polled barrier first makes sure every rank
// has arrived, so that only a rank stopped in the instant between the two can hang it.
Communicator Communicator::split(int color, int key) const {
  polled_barrier(comm_, "in the barrier before a communicator split");
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Comm_split(comm_, color, key, &out);
  return Communicator(out, true);
}

Communicator Communicator::split_node_local() const {
  polled_barrier(comm_, "in the barrier before a node-local split");
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &out);
  return Communicator(out, true);
}

Communicator Communicator::dup() const {
  RequestSlot<MPI_Comm> out(MPI_COMM_NULL);
  MPI_Request request;
  MPI_Comm_idup(comm_, out.get(), &request);
  wait_for_collective(request, comm_, "in a communicator duplication");
  return Communicator(out.take(), true);
}

void Communicator::barrier() const { polled_barrier(comm_, "in a barrier"); }

void Communicator::broadcast(void* data, size_t bytes, int root) const {
  auto* p = static_cast<char*>(data);
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(bytes - done, kMaxCount);
    MPI_Request request;
    MPI_Ibcast(p + done, static_cast<int>(n), MPI_BYTE, root, comm_, &request);
    wait_for_broadcast(request, comm_, root);
    done += n;
  }
}

void Communicator::broadcast_string(std::string& text, int root) const {
  RequestSlot<uint64_t> length(text.size());
  MPI_Request request;
  MPI_Ibcast(length.get(), 1, MPI_UINT64_T, root, comm_, &request);
  wait_for_broadcast(request, comm_, root, kIdle);  // the root may send its next task much later
  text.resize(length.take());
  broadcast(text.data(), text.size(), root);
}

void Communicator::all_reduce_sum(float* values, size_t count) const {
  all_reduce_sum_in_pieces(comm_, values, count, MPI_FLOAT);
}

PendingCollective Communicator::start_all_reduce_sum(float* values, size_t count) const {
  HNAS_ASSERT(count <= kMaxCount, "start_all_reduce_sum of " << count << " floats: split it into buckets");
  MPI_Request request;
  MPI_Iallreduce(MPI_IN_PLACE, values, static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm_, &request);
  return PendingCollective(request, comm_, "in a gradient bucket's all-reduce");
}

PendingCollective Communicator::start_reduce_scatter_sum(const float* values, float* shard, size_t shard_count) const {
  HNAS_ASSERT(shard_count * static_cast<size_t>(size_) <= kMaxCount,
              "start_reduce_scatter_sum of " << shard_count << " floats per rank: split it into buckets");
  MPI_Request request;
  MPI_Ireduce_scatter_block(values, shard, static_cast<int>(shard_count), MPI_FLOAT, MPI_SUM, comm_, &request);
  return PendingCollective(request, comm_, "in a gradient bucket's reduce-scatter");
}

PendingCollective Communicator::start_all_gather(float* values, size_t shard_count) const {
  HNAS_ASSERT(shard_count * static_cast<size_t>(size_) <= kMaxCount,
              "start_all_gather of " << shard_count << " floats per rank: split it into buckets");
  MPI_Request request;
  MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values, static_cast<int>(shard_count), MPI_FLOAT, comm_, &request);
  return PendingCollective(request, comm_, "in a parameter bucket's all-gather");
}

void Communicator::gather(const float* values, size_t count, float* gathered, int root) const {
  HNAS_ASSERT(count * static_cast<size_t>(size_) <= kMaxCount, "gather of " << count << " floats per rank");
  MPI_Request request;
  MPI_Igather(values, static_cast<int>(count), MPI_FLOAT, gathered, static_cast<int>(count), MPI_FLOAT, root, comm_,
              &request);
  wait_for_collective(request, comm_, "in a gather");
}

PendingCollective::~PendingCollective() {
  if (request_ == MPI_REQUEST_NULL) return;
  try {
    wait();
  } catch (...) {  // an error is already on its way; never throw from a destructor
  }
}

PendingCollective::PendingCollective(PendingCollective&& other) noexcept
    : request_(std::exchange(other.request_, MPI_REQUEST_NULL)), comm_(other.comm_), operation_(other.operation_) {}

PendingCollective& PendingCollective::operator=(PendingCollective&& other) noexcept {
  if (this != &other) {
    if (request_ != MPI_REQUEST_NULL) {
      try {
        wait();
      } catch (...) {
      }
    }
    request_ = std::exchange(other.request_, MPI_REQUEST_NULL);
    comm_ = other.comm_;
    operation_ = other.operation_;
  }
  return *this;
}

bool PendingCollective::test() {
  if (request_ == MPI_REQUEST_NULL) return true;
  int done = 0;
  MPI_Test(&request_, &done, MPI_STATUS_IGNORE);
  return done != 0;
}

void PendingCollective::wait() {
  if (request_ == MPI_REQUEST_NULL) return;
  const MPI_Comm comm = comm_;
  const char* operation = operation_;
  wait_for(request_, [comm, operation] { return std::string(operation) + " over " + describe_members(comm); });
}

void Communicator::all_reduce_sum(double* values, size_t count) const {
  all_reduce_sum_in_pieces(comm_, values, count, MPI_DOUBLE);
}

int64_t Communicator::all_reduce_max(int64_t value) const {
  return all_reduce_scalar<int64_t>(comm_, value, MPI_INT64_T, MPI_MAX);
}

int64_t Communicator::all_reduce_min(int64_t value) const {
  return all_reduce_scalar<int64_t>(comm_, value, MPI_INT64_T, MPI_MIN);
}

void Communicator::send(const std::string& bytes, int dest, int tag) const {
  HNAS_ASSERT(bytes.size() < static_cast<size_t>(std::numeric_limits<int>::max()), "message too large");
  MPI_Request request;
  MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag, comm_, &request);
  // A large message waits for `dest` to receive it, which may be between its training steps.
  wait_for(
      request, [&] { return "sending a message to " + world_rank_of(comm_, dest) + " (" + describe_tag(tag) + ")"; },
      kIdle);
}

std::optional<Message> Communicator::try_receive(int source, int tag) const {
  // A matched probe: the message found is the one received, whatever else arrives.
  int waiting = 0;
  MPI_Message handle = MPI_MESSAGE_NULL;
  MPI_Status status;
  MPI_Improbe(source, tag, comm_, &waiting, &handle, &status);
  if (!waiting) return std::nullopt;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  // The body of a large message still has to come from its sender: a received buffer the
  // operation may fill after a stall was reported stays allocated (see RequestSlot).
  RequestSlot<Message> message(
      Message{std::string(static_cast<size_t>(count), '\0'), status.MPI_SOURCE, status.MPI_TAG});
  MPI_Request request;
  MPI_Imrecv(message.get()->bytes.data(), count, MPI_BYTE, &handle, &request);
  wait_for(request, [&] {
    return "receiving a message from " + world_rank_of(comm_, status.MPI_SOURCE) + " (" + describe_tag(status.MPI_TAG) +
           ")";
  });
  return message.take();
}

Message Communicator::receive(int source, int tag) const {
  std::optional<Message> message;
  wait_politely(
      kIdle, [&] { return (message = try_receive(source, tag)).has_value(); },
      [&] {
        const std::string from = source == MPI_ANY_SOURCE ? "any of world ranks " + format_ranks(world_ranks(comm_))
                                                          : world_rank_of(comm_, source);
        return "waiting for a message from " + from + " (" + describe_tag(tag) + ")";
      });
  return std::move(*message);
}

void agree_on_errors(const Communicator& comm, const std::function<void()>& work) {
  std::string message;
  int64_t code = 0;
  try {
    work();
  } catch (const Error& e) {
    message = e.what();
    code = e.exit_code();
  } catch (const std::exception& e) {  // a library's failure: agreed on too, as an internal error
    message = std::string("unexpected: ") + e.what();
    code = kExitInternal;
  }
  const int64_t failing = comm.all_reduce_min(code != 0 ? comm.rank() : comm.size());
  if (failing == comm.size()) return;
  comm.broadcast(&code, sizeof code, static_cast<int>(failing));
  comm.broadcast_string(message, static_cast<int>(failing));
  if (failing != 0) message = log::format("[rank %ld] ", static_cast<long>(failing)) + message;
  throw CollectiveError(message, static_cast<int>(code));
}

void abort_job(int exit_code) {
  int initialized = 0, finalized = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

MessageWriter& MessageWriter::put_string(const std::string& text) {
  put<uint64_t>(text.size());
  bytes_.append(text);
  return *this;
}

std::string MessageReader::get_string() {
  const auto n = get<uint64_t>();
  HNAS_ASSERT(offset_ + n <= bytes_.size(), "truncated message");
  std::string text = bytes_.substr(offset_, n);
  offset_ += n;
  return text;
}

void MessageReader::take(void* out, size_t n) {
  HNAS_ASSERT(offset_ + n <= bytes_.size(), "truncated message");
  std::memcpy(out, bytes_.data() + offset_, n);
  offset_ += n;
}

}  // namespace hnas::dist
