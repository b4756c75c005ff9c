// SPDX-License-Identifier: Apache-2.0
#include "hnas/core/files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "hnas/core/error.hpp"

namespace hnas {

void require_readable_file(const std::string& path, const std::string& what) {
  const std::string name = what + " " + printable(path);
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) throw InputError(name + " does not exist");
    throw InputError(name + " cannot be read: " + std::strerror(errno));
  }
  if (S_ISDIR(info.st_mode)) throw InputError(name + " is a directory, not a file");
  if (S_ISFIFO(info.st_mode)) throw InputError(name + " is a FIFO (named pipe); give a regular file");
  if (!S_ISREG(info.st_mode)) throw InputError(name + " is not a regular file");
  if (access(path.c_str(), R_OK) != 0) throw InputError(name + " is not readable: " + std::strerror(errno));
}

std::string printable(const std::string& text, size_t max_length) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > max_length && max_length >= 8) {
    const size_t keep = (max_length - 3) / 2;
    out = out.substr(0, keep) + "..." + out.substr(out.size() - keep);
  }
  return out;
}

}  // namespace hnas
