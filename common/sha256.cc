#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "absl/strings/escaping.h"

namespace computevoucher {
namespace {

// One fetched algorithm for the process and one digest context per thread:
// EVP_Q_digest looks the algorithm up, locks and allocates on every call,
// which showed in the journal's hot path.
const EVP_MD* Algorithm() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

struct Context {
  Context() : ctx(EVP_MD_CTX_new()) {}
  ~Context() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx;
};

}  // namespace

std::string Sha256(absl::string_view data) {
  thread_local Context context;
  std::string digest(kSha256Bytes, '\0');
  unsigned int size = 0;
  if (Algorithm() == nullptr || context.ctx == nullptr ||
      EVP_DigestInit_ex(context.ctx, Algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(context.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(context.ctx,
                         reinterpret_cast<unsigned char*>(digest.data()),
                         &size) != 1 ||
      size != kSha256Bytes) {
    // Only a broken OpenSSL installation gets here; a wrong hash would be
    // worse than stopping.
    std::abort();
  }
  return digest;
}

std::string ToHex(absl::string_view bytes) {
  return absl::BytesToHexString(bytes);
}

}  // namespace computevoucher
