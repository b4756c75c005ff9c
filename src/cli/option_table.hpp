// SPDX-License-Identifier: Apache-2.0
// The one declaration of every configuration key (internal to cli/): its type, default
// (the bound field's initial value), range or choices, doc string and whether a resumed
// run may change it. --help, the effective INI, the resume check and the documentation
// test all read this table.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "hnas/cli/options.hpp"
#include "hnas/core/files.hpp"

namespace hnas::cli {

using Problems = std::vector<std::string>;

/// Whether a run directory started with one value accepts another when it is resumed.
enum class OnResume { Fixed, MayChange };

/// Closed or open bounds of a numeric key; every real must also be finite.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;

  static Range any() { return {}; }
  static Range at_least(double v) { return {v, std::numeric_limits<double>::infinity(), false, false}; }
  static Range above(double v) { return {v, std::numeric_limits<double>::infinity(), true, false}; }
  static Range closed(double lo, double hi) { return {lo, hi, false, false}; }
  static Range half_open(double lo, double hi) { return {lo, hi, false, true}; }    ///< [lo, hi)
  static Range open_closed(double lo, double hi) { return {lo, hi, true, false}; }  ///< (lo, hi]
  static Range open(double lo, double hi) { return {lo, hi, true, true}; }
  bool contains(double v) const;
  std::string describe() const;  ///< ">= 1", "in [0, 1)"
};

class OptionTable {
 public:
  template <class Int>
  void integer(const std::string& key, Int* field, Range range, const std::string& doc,
               OnResume resume = OnResume::Fixed);
  void real(const std::string& key, double* field, Range range, const std::string& doc,
            OnResume resume = OnResume::Fixed);
  void flag(const std::string& key, bool* field, const std::string& doc, OnResume resume = OnResume::Fixed);
  void text(const std::string& key, std::string* field, const std::string& doc, OnResume resume = OnResume::Fixed);
  /// A list of words: several words after the option on the command line, commas or
  /// spaces in an INI file.
  void words(const std::string& key, std::vector<std::string>* field, const std::string& doc,
             OnResume resume = OnResume::Fixed);
  void reals(const std::string& key, std::vector<double>* field, Range range, const std::string& doc,
             OnResume resume = OnResume::Fixed);
  template <class Enum>
  void choice(const std::string& key, Enum* field, std::vector<std::pair<std::string, Enum>> choices,
              const std::string& doc, OnResume resume = OnResume::Fixed);

  /// Every key as a Boost option taking text (converted by assign), for parsing and --help.
  void describe_to(boost::program_options::options_description& description) const;
  /// Converts and checks every key's text into its field; each problem names its key.
  void assign(const boost::program_options::variables_map& values, Problems& problems) const;
  /// Top-level keys first, then one [section] per dotted prefix, in declaration order;
  /// values as the fields hold them after assign (re-loadable).
  std::string effective_ini() const;
  std::vector<std::string> keys_free_on_resume() const;
  std::vector<KeyInfo> keys() const;

 private:
  struct Entry {
    KeyInfo info;
    bool list = false;
    std::function<void(const std::string& text, Problems& problems)> assign;  ///< parse + check into the field
    std::function<std::string()> current;                                     ///< the field as INI text
  };
  void add(KeyInfo info, bool list, std::function<void(const std::string&, Problems&)> assign,
           std::function<std::string()> current);
  std::vector<Entry> entries_;
};

/// Parses an integer or a finite real; appends "<key>: ..." to problems on failure.
bool parse_integer(const std::string& key, const std::string& text, long long& out, Problems& problems);
bool parse_real(const std::string& key, const std::string& text, double& out, Problems& problems);
/// Appends "<key> must be <range>, got <v>" when out of range.
void check_range(const std::string& key, double value, const Range& range, const std::string& shown,
                 Problems& problems);
std::string format_real(double value);

template <class Int>
void OptionTable::integer(const std::string& key, Int* field, Range range, const std::string& doc, OnResume resume) {
  add(
      {key, "int", std::to_string(*field), doc, resume == OnResume::MayChange}, false,
      [key, field, range](const std::string& text, Problems& problems) {
        long long value = 0;
        if (!parse_integer(key, text, value, problems)) return;
        check_range(key, static_cast<double>(value), range, text, problems);
        if (!range.contains(static_cast<double>(value))) return;
        const bool fits = value < 0 ? value >= static_cast<long long>(std::numeric_limits<Int>::min())
                                    : static_cast<unsigned long long>(value) <= std::numeric_limits<Int>::max();
        if (!fits) {
          problems.push_back(key + ": " + text + " does not fit");
          return;
        }
        *field = static_cast<Int>(value);
      },
      [field] { return std::to_string(*field); });
}

template <class Enum>
void OptionTable::choice(const std::string& key, Enum* field, std::vector<std::pair<std::string, Enum>> choices,
                         const std::string& doc, OnResume resume) {
  std::string names, current;
  for (const auto& [name, value] : choices) {
    names += (names.empty() ? "" : "/") + name;
    if (value == *field) current = name;
  }
  add(
      {key, names, current, doc, resume == OnResume::MayChange}, false,
      [key, field, choices](const std::string& text, Problems& problems) {
        std::string listed;
        for (const auto& [name, value] : choices) {
          if (name == text) {
            *field = value;
            return;
          }
          listed += (listed.empty() ? "" : ", ") + name;
        }
        problems.push_back(key + " must be one of " + listed + ", got \"" + printable(text) + "\"");
      },
      [field, choices] {
        for (const auto& [name, value] : choices)
          if (value == *field) return name;
        return std::string("?");
      });
}

}  // namespace hnas::cli
