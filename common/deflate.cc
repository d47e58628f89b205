#include "common/deflate.h"

#include <zlib.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace computevoucher {
namespace {

constexpr size_t kLengthBytes = 8;

}  // namespace

std::string Deflate(absl::string_view bytes) {
  uLongf size = compressBound(bytes.size());
  std::string out(kLengthBytes + size, '\0');
  for (size_t i = 0; i < kLengthBytes; ++i) {
    out[i] = static_cast<char>(static_cast<uint64_t>(bytes.size()) >> (8 * i));
  }
  compress2(reinterpret_cast<Bytef*>(&out[kLengthBytes]), &size,
            reinterpret_cast<const Bytef*>(bytes.data()), bytes.size(), 1);
  out.resize(kLengthBytes + size);
  return out;
}

absl::StatusOr<std::string> Inflate(absl::string_view stored,
                                    uint64_t max_bytes) {
  if (stored.size() < kLengthBytes) {
    return absl::DataLossError("it is shorter than its length");
  }
  uint64_t length = 0;
  for (size_t i = 0; i < kLengthBytes; ++i) {
    length |= uint64_t{static_cast<unsigned char>(stored[i])} << (8 * i);
  }
  if (length > max_bytes) {
    return absl::DataLossError(
        absl::StrCat("its length ", length, " is out of range"));
  }
  std::string out(length, '\0');
  uLongf size = length;
  const int rc =
      uncompress(reinterpret_cast<Bytef*>(out.data()), &size,
                 reinterpret_cast<const Bytef*>(stored.data() + kLengthBytes),
                 stored.size() - kLengthBytes);
  if (rc != Z_OK || size != length) {
    return absl::DataLossError("it does not inflate to its length");
  }
  return out;
}

}  // namespace computevoucher
