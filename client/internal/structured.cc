#include "client/internal/structured.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"

namespace computevoucher::client {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A value as both writers see it: a literal (a number, true, false), a
// string, a list, or a map of names to values in field order.
struct Node {
  enum class Kind { kLiteral, kString, kList, kMap };
  Kind kind = Kind::kLiteral;
  std::string text;
  std::vector<Node> items;
  std::vector<std::pair<std::string, Node>> fields;
};

Node Literal(std::string text) {
  Node n;
  n.text = std::move(text);
  return n;
}

Node String(std::string text) {
  Node n;
  n.kind = Node::Kind::kString;
  n.text = std::move(text);
  return n;
}

// The shortest decimal that reads back as `d`; a non-finite value as the
// string the protobuf mapping uses.
Node Double(double d) {
  if (std::isnan(d)) return String("NaN");
  if (std::isinf(d)) return String(d > 0 ? "Infinity" : "-Infinity");
  std::string text;
  for (int digits = 15; digits <= 17; ++digits) {
    text = absl::StrFormat("%.*g", digits, d);
    if (std::strtod(text.c_str(), nullptr) == d) break;
  }
  // "1e+20" is a string to YAML 1.1 readers; "1.0e+20" a number to both.
  const size_t e = text.find('e');
  if (e != std::string::npos && text.find('.') == std::string::npos) {
    text.insert(e, ".0");
  }
  return Literal(text);
}

Node FromMessage(const Message& m);

// Field `f` of `m`, or its element `i` when it is repeated.
Node FromField(const Message& m, const FieldDescriptor* f, int i) {
  const Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return Literal(
          absl::StrCat(rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f)));
    case FieldDescriptor::CPPTYPE_INT64:
      return Literal(
          absl::StrCat(rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f)));
    case FieldDescriptor::CPPTYPE_UINT32:
      return Literal(absl::StrCat(rep ? r->GetRepeatedUInt32(m, f, i)
                                      : r->GetUInt32(m, f)));
    case FieldDescriptor::CPPTYPE_UINT64:
      return Literal(absl::StrCat(rep ? r->GetRepeatedUInt64(m, f, i)
                                      : r->GetUInt64(m, f)));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Double(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Double(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return Literal((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f))
                         ? "true"
                         : "false");
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number =
          rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const auto* value = f->enum_type()->FindValueByNumber(number);
      return value != nullptr ? String(value->name())
                              : Literal(absl::StrCat(number));
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string text =
          rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        text = absl::BytesToHexString(text);
      }
      return String(std::move(text));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return FromMessage(rep ? r->GetRepeatedMessage(m, f, i)
                             : r->GetMessage(m, f));
  }
  return Literal("null");
}

// A map field's entries as a map keyed by their keys' text.
Node FromMapField(const Message& m, const FieldDescriptor* f) {
  Node n;
  n.kind = Node::Kind::kMap;
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    const Message& entry = r->GetRepeatedMessage(m, f, i);
    const Descriptor* d = entry.GetDescriptor();
    n.fields.emplace_back(FromField(entry, d->map_key(), -1).text,
                          FromField(entry, d->map_value(), -1));
  }
  return n;
}

// Timestamps and durations as the protobuf mapping writes them
// ("2026-12-05T16:00:00Z", "1.500s").
bool WellKnown(const Message& m, Node* out) {
  const std::string& name = m.GetDescriptor()->full_name();
  if (name != "google.protobuf.Timestamp" &&
      name != "google.protobuf.Duration") {
    return false;
  }
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  const int64_t seconds = r->GetInt64(m, d->FindFieldByName("seconds"));
  const int32_t nanos = r->GetInt32(m, d->FindFieldByName("nanos"));
  using google::protobuf::util::TimeUtil;
  if (name == "google.protobuf.Timestamp") {
    google::protobuf::Timestamp ts;
    ts.set_seconds(seconds);
    ts.set_nanos(nanos);
    *out = String(TimeUtil::ToString(ts));
  } else {
    google::protobuf::Duration duration;
    duration.set_seconds(seconds);
    duration.set_nanos(nanos);
    *out = String(TimeUtil::ToString(duration));
  }
  return true;
}

// Every field in declaration order: scalars and lists always, messages,
// oneof members and optional fields when set.
Node FromMessage(const Message& m) {
  Node n;
  if (WellKnown(m, &n)) return n;
  n.kind = Node::Kind::kMap;
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map()) {
      n.fields.emplace_back(f->name(), FromMapField(m, f));
    } else if (f->is_repeated()) {
      Node list;
      list.kind = Node::Kind::kList;
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        list.items.push_back(FromField(m, f, j));
      }
      n.fields.emplace_back(f->name(), std::move(list));
    } else if (!f->has_presence() || r->HasField(m, f)) {
      n.fields.emplace_back(f->name(), FromField(m, f, -1));
    }
  }
  return n;
}

// A JSON string literal (also a YAML double-quoted scalar): quotes,
// backslashes and control characters escaped, and the characters YAML
// readers refuse or fold (C1 controls, U+2028, U+2029, U+FEFF) as \uXXXX;
// other UTF-8 as is.
std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = [&](size_t k) {
      return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0;
    };
    if (c == '"' || c == '\\') {
      out += {'\\', static_cast<char>(c)};
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\u%04x", c);
    } else if (c == 0xc2 && next(1) >= 0x80 && next(1) <= 0x9f) {
      out += absl::StrFormat("\\u%04x", next(1));
      i += 1;
    } else if (c == 0xe2 && next(1) == 0x80 &&
               (next(2) == 0xa8 || next(2) == 0xa9)) {
      out += next(2) == 0xa8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else if (c == 0xef && next(1) == 0xbb && next(2) == 0xbf) {
      out += "\\ufeff";
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void WriteJson(const Node& n, bool one_line, int depth, std::string* out) {
  const std::string newline =
      one_line ? "" : "\n" + std::string(2 * (depth + 1), ' ');
  const std::string close = one_line ? "" : "\n" + std::string(2 * depth, ' ');
  switch (n.kind) {
    case Node::Kind::kLiteral:
      *out += n.text;
      return;
    case Node::Kind::kString:
      *out += Quote(n.text);
      return;
    case Node::Kind::kList:
      *out += "[";
      for (size_t i = 0; i < n.items.size(); ++i) {
        *out += (i > 0 ? "," : "") + newline;
        WriteJson(n.items[i], one_line, depth + 1, out);
      }
      *out += (n.items.empty() ? "" : close) + "]";
      return;
    case Node::Kind::kMap:
      *out += "{";
      for (size_t i = 0; i < n.fields.size(); ++i) {
        *out += (i > 0 ? "," : "") + newline + Quote(n.fields[i].first) +
                (one_line ? ":" : ": ");
        WriteJson(n.fields[i].second, one_line, depth + 1, out);
      }
      *out += (n.fields.empty() ? "" : close) + "}";
      return;
  }
}

// Whether YAML reads `text` unquoted as this string: a word of letters,
// digits and . _ / - starting with a letter or _, and not one of the words
// YAML 1.1 reads as a boolean or null.
bool PlainYaml(const std::string& text) {
  static const auto* const kReserved = new std::vector<std::string>{
      "y",  "Y",    "yes",  "Yes",  "YES",   "n",     "N",     "no", "No",
      "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On",
      "ON", "off",  "Off",  "OFF",  "null",  "Null",  "NULL"};
  if (text.empty() || !(absl::ascii_isalpha(text[0]) || text[0] == '_')) {
    return false;
  }
  for (const char c : text) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '/' &&
        c != '-') {
      return false;
    }
  }
  for (const std::string& word : *kReserved) {
    if (text == word) return false;
  }
  return true;
}

std::string YamlScalar(const Node& n) {
  if (n.kind == Node::Kind::kLiteral) return n.text;
  return PlainYaml(n.text) ? n.text : Quote(n.text);
}

void WriteYamlMap(const Node& map, int indent, bool first_inline,
                  std::string* out);

// What follows "key:" or "- ": a scalar or empty collection on the same
// line, else the block on the next lines at `indent`.
void WriteYamlValue(const Node& n, int indent, std::string* out) {
  if (n.kind == Node::Kind::kList && !n.items.empty()) {
    *out += "\n";
    for (const Node& item : n.items) {
      *out += std::string(indent, ' ') + "-";
      if (item.kind == Node::Kind::kMap && !item.fields.empty()) {
        *out += " ";
        WriteYamlMap(item, indent + 2, true, out);
      } else {
        WriteYamlValue(item, indent + 2, out);
      }
    }
  } else if (n.kind == Node::Kind::kMap && !n.fields.empty()) {
    *out += "\n";
    WriteYamlMap(n, indent, false, out);
  } else if (n.kind == Node::Kind::kList) {
    *out += " []\n";
  } else if (n.kind == Node::Kind::kMap) {
    *out += " {}\n";
  } else {
    *out += " " + YamlScalar(n) + "\n";
  }
}

void WriteYamlMap(const Node& map, int indent, bool first_inline,
                  std::string* out) {
  for (size_t i = 0; i < map.fields.size(); ++i) {
    if (i > 0 || !first_inline) *out += std::string(indent, ' ');
    const auto& [key, value] = map.fields[i];
    *out += YamlScalar(String(key)) + ":";
    // A list's items stand at the indent of its key, as kubectl writes
    // them; a map's fields one level deeper.
    const bool list = value.kind == Node::Kind::kList;
    WriteYamlValue(value, list ? indent : indent + 2, out);
  }
}

}  // namespace

std::string ToJson(const Message& message, bool one_line) {
  std::string out;
  WriteJson(FromMessage(message), one_line, 0, &out);
  return out;
}

std::string ToYaml(const Message& message) {
  const Node n = FromMessage(message);
  if (n.fields.empty()) return "{}\n";
  std::string out;
  WriteYamlMap(n, 0, false, &out);
  return out;
}

}  // namespace computevoucher::client
