// Handing freed memory back to the system.
#ifndef COMPUTEVOUCHER_COMMON_MEMORY_H_
#define COMPUTEVOUCHER_COMMON_MEMORY_H_

namespace computevoucher {

// Returns the memory the process has freed to the system, so that what it
// keeps resident is what it still uses: after a start-up replay, say, which
// frees far more than the state it leaves needs. Through tcmalloc where it
// is linked (the servers, CV_TCMALLOC), glibc's malloc_trim otherwise.
void ReleaseFreeMemory();

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_MEMORY_H_
