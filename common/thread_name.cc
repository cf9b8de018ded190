#include "common/thread_name.h"

#include <pthread.h>

#include <string>

namespace shoal {

void SetThreadName(absl::string_view name) {
  std::string n(name.substr(0, 15));  // the kernel's limit (16 bytes with the terminator)
  pthread_setname_np(pthread_self(), n.c_str());
}

}  // namespace shoal
