#include "agent/internal/shared_library.h"

#include <dlfcn.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace computevoucher::agent {
namespace {

// dlerror()'s text, which a failed call leaves; cleared before each call.
std::string LastDlError(const char* fallback) {
  const char* error = dlerror();
  return error != nullptr ? error : fallback;
}

}  // namespace

absl::StatusOr<SharedLibrary> SharedLibrary::Open(const std::string& path,
                                                  Messages messages) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: cannot load %s: %s (%s)", messages.source, path,
                        LastDlError("unknown error"), messages.load_hint));
  }
  return SharedLibrary(handle, path, std::move(messages));
}

SharedLibrary::SharedLibrary(void* handle, std::string path, Messages messages)
    : handle_(handle), path_(std::move(path)), messages_(std::move(messages)) {}

SharedLibrary::~SharedLibrary() {
  if (handle_ != nullptr) dlclose(handle_);
}

SharedLibrary::SharedLibrary(SharedLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      path_(std::move(other.path_)),
      messages_(std::move(other.messages_)) {}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    path_ = std::move(other.path_);
    messages_ = std::move(other.messages_);
  }
  return *this;
}

absl::StatusOr<void*> SharedLibrary::Find(const char* symbol) const {
  dlerror();
  void* address = dlsym(handle_, symbol);
  if (address == nullptr) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s has no function %s: %s (%s)", messages_.source, path_, symbol,
        LastDlError("null symbol"), messages_.symbol_hint));
  }
  return address;
}

}  // namespace computevoucher::agent
