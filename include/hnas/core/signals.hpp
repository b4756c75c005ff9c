// SPDX-License-Identifier: Apache-2.0
// Graceful stop on SIGTERM / SIGUSR1 (time limits, preemption) or at the job's deadline
// (hnas/core/deadline.hpp): the handler only sets a flag; training loops poll it at step
// boundaries and the search makes its state durable before exiting with kExitResumable.
#pragma once

namespace hnas {

/// Installs the SIGTERM and SIGUSR1 handlers (idempotent). Rank-local; call from main.
void install_stop_signal_handlers();

/// True once a stop signal arrived (or request_stop() was called), or once the deadline
/// less its margin has passed. Thread-safe; not for use inside a signal handler.
bool stop_requested();

/// The number of the first stop signal received (0 if none or requested in code).
int stop_signal_number();

/// Sets the stop flag from code (tests, or a stop relayed by another rank).
void request_stop();

/// Clears the flag (tests only).
void reset_stop_request();

}  // namespace hnas
