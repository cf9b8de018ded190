// Test helper: a log entry with the given index, term and data.
#pragma once

#include <cstdint>
#include <string>

#include "proto/raft.pb.h"

namespace shoal::raft::testing {

inline raftpb::Entry E(uint64_t index, uint64_t term, std::string data = "") {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

}  // namespace shoal::raft::testing
