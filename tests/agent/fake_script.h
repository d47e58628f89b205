// The script reader of the fake vendor libraries the agent tests load with
// dlopen (tests/agent/fake_nvml.cc, tests/agent/fake_dcmi.cc): one
// directive a line, blank lines and lines starting with '#' ignored, fields
// separated by spaces or tabs, double quotes letting a field hold spaces
// (name="NVIDIA H100 80GB HBM3").
//
// Header only and plain C++, so that each fake stays a self-contained
// shared library.
#ifndef COMPUTEVOUCHER_TESTS_AGENT_FAKE_SCRIPT_H_
#define COMPUTEVOUCHER_TESTS_AGENT_FAKE_SCRIPT_H_

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fake_script {

// Splits on blanks; double quotes group (and are dropped).
inline std::vector<std::string> Fields(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  bool in_field = false;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      in_field = true;
    } else if (!quoted && (c == ' ' || c == '\t' || c == '\r')) {
      if (in_field) fields.push_back(field);
      field.clear();
      in_field = false;
    } else {
      field += c;
      in_field = true;
    }
  }
  if (in_field) fields.push_back(field);
  return fields;
}

// An unsigned decimal number.
inline bool ParseUnsigned(const std::string& text, unsigned long long* out) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = value;
  return true;
}

// A decimal number, optionally negative.
inline bool ParseSigned(const std::string& text, long long* out) {
  const size_t digits = !text.empty() && text[0] == '-' ? 1 : 0;
  unsigned long long magnitude = 0;
  if (!ParseUnsigned(text.substr(digits), &magnitude) ||
      magnitude > 1ULL << 62) {
    return false;
  }
  *out = digits == 1 ? -static_cast<long long>(magnitude)
                     : static_cast<long long>(magnitude);
  return true;
}

// "<n>[,<n>...]" of unsigned numbers.
inline bool ParseList(const std::string& text,
                      std::vector<unsigned long long>* out) {
  out->clear();
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    unsigned long long value = 0;
    if (!ParseUnsigned(item, &value)) return false;
    out->push_back(value);
  }
  return !out->empty() && text.back() != ',';
}

// Appends `line` to the file the environment variable `env` names, if set.
inline void Log(const char* env, const char* line) {
  const char* path = std::getenv(env);
  if (path == nullptr || *path == '\0') return;
  FILE* f = std::fopen(path, "a");
  if (f == nullptr) return;
  std::fprintf(f, "%s\n", line);
  std::fclose(f);
}

enum class Outcome { kRead, kMissing, kMalformed };

// Reads the script the environment variable `env` names and hands each
// directive's fields to `parse`, which returns an error text (empty if
// fine). kMissing: the variable is unset or the file unreadable.
// kMalformed: `parse` failed; "<fake>: <path>:<line>: <error>" went to
// stderr.
template <typename Parse>
Outcome Read(const char* env, const char* fake, Parse parse) {
  const char* path = std::getenv(env);
  if (path == nullptr || *path == '\0') return Outcome::kMissing;
  std::ifstream in(path);
  if (!in) return Outcome::kMissing;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::vector<std::string> fields = Fields(line);
    if (fields.empty() || fields[0][0] == '#') continue;
    const std::string error = parse(fields);
    if (!error.empty()) {
      std::fprintf(stderr, "%s: %s:%d: %s\n", fake, path, number,
                   error.c_str());
      return Outcome::kMalformed;
    }
  }
  return Outcome::kRead;
}

}  // namespace fake_script

#endif  // COMPUTEVOUCHER_TESTS_AGENT_FAKE_SCRIPT_H_
