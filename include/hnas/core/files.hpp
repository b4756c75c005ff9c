// SPDX-License-Identifier: Apache-2.0
// Checks on the files a user names (configuration files, token shards) before they are
// opened, so that a directory, a named pipe or an unreadable file gets a one-line error
// naming it instead of a blocked open or a library's message. Rank-local.
#pragma once

#include <string>

namespace hnas {

/// Throws InputError "<what> <path> is a directory | is a FIFO (named pipe) | does not
/// exist | is not readable (reason)" unless `path` is a readable regular file (or a
/// symbolic link to one). Never opens the file, so it cannot block on a FIFO.
void require_readable_file(const std::string& path, const std::string& what);

/// `text` made safe to print in a one-line message: control and non-ASCII bytes escaped
/// (\n, \x1b), and shortened to about `max_length` characters with "..." in the middle.
std::string printable(const std::string& text, size_t max_length = 80);

}  // namespace hnas
