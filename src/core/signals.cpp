// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/signals.hpp"

#include <csignal>

#include "hnas/core/deadline.hpp"

namespace hnas {
namespace {

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int number) {
  if (g_signal == 0) g_signal = number;
  g_stop = 1;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls resume; the flag is polled at step boundaries
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool stop_requested() { return g_stop != 0 || deadline_passed(); }
int stop_signal_number() { return g_signal; }
void request_stop() { g_stop = 1; }
void reset_stop_request() {
  g_stop = 0;
  g_signal = 0;
}

}  // namespace hnas
