// SPDX-License-Identifier: Apache-2.0
#include "hnas/dist/communicator.hpp"

#include <algorithm>
#include <chrono>
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

// MPI counts are int: large buffers go in slices below this many elements.
constexpr size_t kMaxCount = size_t{1} << 28;

// Polls `ready` with sleeps that grow from 20 us to 2 ms: quick hand-offs stay quick,
// long waits (a team waiting for its next task) cost almost no CPU.
template <typename Ready>
void wait_politely(Ready ready) {
  auto pause = std::chrono::microseconds(20);
  while (!ready()) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

}  // namespace

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

Communicator Communicator::split(int color, int key) const {
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Comm_split(comm_, color, key, &out);
  return Communicator(out, true);
}

Communicator Communicator::split_node_local() const {
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &out);
  return Communicator(out, true);
}

void Communicator::barrier() const { MPI_Barrier(comm_); }

void Communicator::broadcast(void* data, size_t bytes, int root) const {
  auto* p = static_cast<char*>(data);
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(bytes - done, kMaxCount);
    MPI_Bcast(p + done, static_cast<int>(n), MPI_BYTE, root, comm_);
    done += n;
  }
}

void Communicator::broadcast_string(std::string& text, int root) const {
  uint64_t length = text.size();
  MPI_Request request;
  MPI_Ibcast(&length, 1, MPI_UINT64_T, root, comm_, &request);
  wait_politely([&] {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
  text.resize(length);
  broadcast(text.data(), length, root);
}

void Communicator::all_reduce_sum(float* values, size_t count) const {
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(count - done, kMaxCount);
    MPI_Allreduce(MPI_IN_PLACE, values + done, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_);
    done += n;
  }
}

void Communicator::all_reduce_sum(double* values, size_t count) const {
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(count - done, kMaxCount);
    MPI_Allreduce(MPI_IN_PLACE, values + done, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_);
    done += n;
  }
}

int64_t Communicator::all_reduce_max(int64_t value) const {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, comm_);
  return value;
}

int64_t Communicator::all_reduce_min(int64_t value) const {
  MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MIN, comm_);
  return value;
}

void Communicator::send(const std::string& bytes, int dest, int tag) const {
  HNAS_ASSERT(bytes.size() < static_cast<size_t>(std::numeric_limits<int>::max()), "message too large");
  MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag, comm_);
}

std::optional<Message> Communicator::try_receive(int source, int tag) const {
  int waiting = 0;
  MPI_Status status;
  MPI_Iprobe(source, tag, comm_, &waiting, &status);
  if (!waiting) return std::nullopt;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  Message message;
  message.bytes.resize(static_cast<size_t>(count));
  message.source = status.MPI_SOURCE;
  message.tag = status.MPI_TAG;
  MPI_Recv(message.bytes.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, comm_, MPI_STATUS_IGNORE);
  return message;
}

Message Communicator::receive(int source, int tag) const {
  std::optional<Message> message;
  wait_politely([&] { return (message = try_receive(source, tag)).has_value(); });
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
