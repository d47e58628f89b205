#include "common/memory.h"

#include <malloc.h>

// tcmalloc's C entry points; null unless tcmalloc is linked.
extern "C" void MallocExtension_MarkThreadTemporarilyIdle(void)
    __attribute__((weak));
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace computevoucher {

void ReleaseFreeMemory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    // The calling thread's cache of freed objects first, so that the spans
    // they come from can go back too.
    if (MallocExtension_MarkThreadTemporarilyIdle != nullptr)
      MallocExtension_MarkThreadTemporarilyIdle();
    MallocExtension_ReleaseFreeMemory();
  } else {
    malloc_trim(0);
  }
}

}  // namespace computevoucher
