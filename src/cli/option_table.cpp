// SPDX-License-Identifier: Apache-2.0
#include "option_table.hpp"

#include <cmath>
#include <map>
#include <sstream>

#include "hnas/core/log.hpp"

namespace po = boost::program_options;

namespace hnas::cli {

bool Range::contains(double v) const { return (min_open ? v > min : v >= min) && (max_open ? v < max : v <= max); }

std::string Range::describe() const {
  if (std::isinf(max)) return std::string(min_open ? "> " : ">= ") + format_real(min);
  if (std::isinf(min)) return std::string(max_open ? "< " : "<= ") + format_real(max);
  return std::string("in ") + (min_open ? "(" : "[") + format_real(min) + ", " + format_real(max) +
         (max_open ? ")" : "]");
}

std::string format_real(double value) { return log::format("%.10g", value); }

bool parse_integer(const std::string& key, const std::string& text, long long& out, Problems& problems) {
  try {
    size_t used = 0;
    out = std::stoll(text, &used);
    if (used == text.size()) return true;
  } catch (const std::exception&) {
  }
  problems.push_back(key + ": \"" + printable(text) + "\" is not an integer");
  return false;
}

bool parse_real(const std::string& key, const std::string& text, double& out, Problems& problems) {
  try {
    size_t used = 0;
    out = std::stod(text, &used);
    if (used == text.size() && std::isfinite(out)) return true;
    if (used == text.size()) {
      problems.push_back(key + ": " + printable(text) + " is not a finite number");
      return false;
    }
  } catch (const std::out_of_range&) {
    problems.push_back(key + ": " + printable(text) + " is out of the range of a double");
    return false;
  } catch (const std::exception&) {
  }
  problems.push_back(key + ": \"" + printable(text) + "\" is not a number");
  return false;
}

void check_range(const std::string& key, double value, const Range& range, const std::string& shown,
                 Problems& problems) {
  if (!range.contains(value)) problems.push_back(key + " must be " + range.describe() + ", got " + printable(shown));
}

void OptionTable::add(KeyInfo info, bool list, std::function<void(const std::string&, Problems&)> assign,
                      std::function<std::string()> current) {
  entries_.push_back({std::move(info), list, std::move(assign), std::move(current)});
}

void OptionTable::real(const std::string& key, double* field, Range range, const std::string& doc, OnResume resume) {
  add(
      {key, "float", format_real(*field), doc, resume == OnResume::MayChange}, false,
      [key, field, range](const std::string& text, Problems& problems) {
        double value = 0;
        if (!parse_real(key, text, value, problems)) return;
        check_range(key, value, range, text, problems);
        *field = value;
      },
      [field] { return format_real(*field); });
}

void OptionTable::flag(const std::string& key, bool* field, const std::string& doc, OnResume resume) {
  add(
      {key, "bool", *field ? "true" : "false", doc, resume == OnResume::MayChange}, false,
      [key, field](const std::string& text, Problems& problems) {
        static const std::map<std::string, bool> kWords{{"true", true}, {"false", false}, {"1", true},  {"0", false},
                                                        {"yes", true},  {"no", false},    {"on", true}, {"off", false}};
        const auto it = kWords.find(text);
        if (it == kWords.end())
          problems.push_back(key + " must be true or false, got \"" + printable(text) + "\"");
        else
          *field = it->second;
      },
      [field] { return std::string(*field ? "true" : "false"); });
}

void OptionTable::text(const std::string& key, std::string* field, const std::string& doc, OnResume resume) {
  add(
      {key, "string", *field, doc, resume == OnResume::MayChange}, false,
      [field](const std::string& text, Problems&) { *field = text; }, [field] { return *field; });
}

namespace {
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}
}  // namespace

void OptionTable::words(const std::string& key, std::vector<std::string>* field, const std::string& doc,
                        OnResume resume) {
  add(
      {key, "list", join(*field), doc, resume == OnResume::MayChange}, true,
      [field](const std::string& text, Problems&) { *field = split_list(text); }, [field] { return join(*field); });
}

void OptionTable::reals(const std::string& key, std::vector<double>* field, Range range, const std::string& doc,
                        OnResume resume) {
  const auto render = [field] {
    std::vector<std::string> items;
    for (double v : *field) items.push_back(format_real(v));
    return join(items);
  };
  add(
      {key, "list", render(), doc, resume == OnResume::MayChange}, true,
      [key, field, range](const std::string& text, Problems& problems) {
        field->clear();
        for (const auto& item : split_list(text)) {
          double value = 0;
          if (!parse_real(key, item, value, problems)) continue;
          check_range(key, value, range, item, problems);
          field->push_back(value);
        }
        if (split_list(text).empty()) problems.push_back(key + " must list at least one value");
      },
      render);
}

void OptionTable::describe_to(po::options_description& description) const {
  for (const auto& e : entries_) {
    const std::string help = e.info.doc + (e.info.free_on_resume ? " (may change when resuming)" : "");
    if (e.list)
      description.add_options()(e.info.key.c_str(),
                                po::value<std::vector<std::string>>()->multitoken()->default_value(
                                    {e.info.default_value}, e.info.default_value),
                                help.c_str());
    else
      description.add_options()(e.info.key.c_str(), po::value<std::string>()->default_value(e.info.default_value),
                                help.c_str());
  }
}

void OptionTable::assign(const po::variables_map& values, Problems& problems) const {
  for (const auto& e : entries_) {
    if (!values.count(e.info.key)) continue;
    if (e.list) {
      std::string joined;  // several words on the command line, or one INI value with commas
      for (const auto& word : values[e.info.key].as<std::vector<std::string>>()) joined += word + " ";
      e.assign(joined, problems);
    } else {
      e.assign(values[e.info.key].as<std::string>(), problems);
    }
  }
}

std::string OptionTable::effective_ini() const {
  std::ostringstream out;
  std::vector<std::string> sections{""};
  std::map<std::string, std::vector<std::string>> lines;
  for (const auto& e : entries_) {
    const auto dot = e.info.key.find('.');
    const std::string section = dot == std::string::npos ? "" : e.info.key.substr(0, dot);
    const std::string name = dot == std::string::npos ? e.info.key : e.info.key.substr(dot + 1);
    if (!lines.count(section) && !section.empty()) sections.push_back(section);
    lines[section].push_back(name + " = " + e.current());
  }
  for (const auto& section : sections) {
    if (!section.empty()) out << "\n[" << section << "]\n";
    for (const auto& line : lines[section]) out << line << "\n";
  }
  return out.str();
}

std::vector<std::string> OptionTable::keys_free_on_resume() const {
  std::vector<std::string> keys;
  for (const auto& e : entries_)
    if (e.info.free_on_resume) keys.push_back(e.info.key);
  return keys;
}

std::vector<KeyInfo> OptionTable::keys() const {
  std::vector<KeyInfo> keys;
  for (const auto& e : entries_) keys.push_back(e.info);
  return keys;
}

}  // namespace hnas::cli
