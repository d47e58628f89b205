// A vendor library the agent loads at run time with dlopen (NVIDIA's NVML,
// Huawei's DCMI), so that the agent builds and runs where the library is
// missing and only the telemetry that needs it fails, with a message that
// says what to install.
//
// Thread-compatible.
#ifndef COMPUTEVOUCHER_AGENT_INTERNAL_SHARED_LIBRARY_H_
#define COMPUTEVOUCHER_AGENT_INTERNAL_SHARED_LIBRARY_H_

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"

namespace computevoucher::agent {

class SharedLibrary {
 public:
  // Words for error messages: "<source>: cannot load <path>: <dlerror>
  // (<load_hint>)" and "<source>: <path> has no function <symbol>:
  // <dlerror> (<symbol_hint>)".
  struct Messages {
    std::string source;
    std::string load_hint;
    std::string symbol_hint;
  };

  // dlopen()s `path` (a file name searched the usual way, or a path) with
  // RTLD_NOW | RTLD_LOCAL. FailedPrecondition when it cannot.
  static absl::StatusOr<SharedLibrary> Open(const std::string& path,
                                            Messages messages);

  // dlclose()s the library unless it was released.
  ~SharedLibrary();
  SharedLibrary(SharedLibrary&& other) noexcept;
  SharedLibrary& operator=(SharedLibrary&& other) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // Sets `fn` to the function `symbol`. FailedPrecondition when the library
  // has no such symbol.
  template <typename Fn>
  absl::Status Resolve(const char* symbol, Fn*& fn) const {
    ASSIGN_OR_RETURN(void* address, Find(symbol));
    // POSIX guarantees that dlsym's object pointer converts to a function
    // pointer; copy the bits so no compiler objects to the cast.
    static_assert(sizeof(fn) == sizeof(address));
    std::memcpy(&fn, &address, sizeof(fn));
    return absl::OkStatus();
  }

  // Keeps the library loaded for the rest of the process: the destructor
  // leaves it alone.
  void Release() { handle_ = nullptr; }

  const std::string& path() const { return path_; }

 private:
  SharedLibrary(void* handle, std::string path, Messages messages);
  absl::StatusOr<void*> Find(const char* symbol) const;

  void* handle_;
  std::string path_;
  Messages messages_;
};

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_INTERNAL_SHARED_LIBRARY_H_
