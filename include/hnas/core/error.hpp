// SPDX-License-Identifier: Apache-2.0
// The exception hierarchy and exit codes of hnas. Errors are exceptions with one
// top-level catch (src/app/main.cpp) that decides how the process ends.
#pragma once

#include <stdexcept>
#include <string>

namespace hnas {

/// Process exit codes; job scripts turn these into requeue decisions.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,    ///< a bug or an unexpected library failure
  kExitConfig = 2,      ///< bad configuration, arguments or input: do not requeue
  kExitResumable = 75,  ///< stopped early (signal, time limit) with durable state
};

/// Base of every hnas error.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  virtual int exit_code() const { return kExitInternal; }
};

/// The user asked for something invalid: a bad option, architecture string or value.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(message) {}
  int exit_code() const override { return kExitConfig; }
};

/// An input file is missing, unreadable, truncated or of the wrong format.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(message) {}
  int exit_code() const override { return kExitConfig; }
};

/// A file could not be written or a library call on a file failed.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(message) {}
};

/// An error every rank of the job has agreed on (dist::agree_on_errors): each rank throws
/// it with the same message and exit code, so the job can end cleanly (no MPI_Abort),
/// with rank 0 alone printing the message.
class CollectiveError : public Error {
 public:
  CollectiveError(const std::string& message, int exit_code) : Error(message), exit_code_(exit_code) {}
  int exit_code() const override { return exit_code_; }

 private:
  int exit_code_;
};

/// The job stopped early on a signal with its state durable; re-running resumes it.
class StoppedError : public Error {
 public:
  explicit StoppedError(const std::string& message) : Error(message) {}
  int exit_code() const override { return kExitResumable; }
};

/// A failure after which this process cannot go on with the job (a broken communicator,
/// a lost device): never recorded as a candidate's failure; the job ends.
class FatalError : public Error {
 public:
  explicit FatalError(const std::string& message) : Error(message) {}
};

/// A broken invariant: a programming error inside hnas.
class InternalError : public Error {
 public:
  explicit InternalError(const std::string& message) : Error(message) {}
};

}  // namespace hnas
