// Snapshot chunks as a sender (or a faulty or hostile one) might stream them, for the tests of
// the receiver's checks (snapshot_stream_test) and of the gRPC service that makes them
// (node_test).
#pragma once

#include <cstdint>
#include <string>

#include "proto/raft_service.pb.h"
#include "raft/snapshot_stream.h"

namespace shoal::raft::testing {

// The first chunk of a snapshot (index 10, term 2) from member 1 for member `to`, announcing
// `total` bytes, carrying `data`.
inline raftpb::SnapshotChunk FirstChunk(uint64_t to, uint64_t total, const std::string& data) {
  raftpb::SnapshotChunk c;
  raftpb::Message* header = c.mutable_header();
  header->set_type(raftpb::MSG_SNAP);
  header->set_from(1);
  header->set_to(to);
  header->set_term(2);
  header->mutable_snapshot()->mutable_metadata()->set_index(10);
  header->mutable_snapshot()->mutable_metadata()->set_term(2);
  c.set_total_bytes(total);
  c.set_data(data);
  return c;
}

inline raftpb::SnapshotChunk NextChunk(uint64_t offset, const std::string& data) {
  raftpb::SnapshotChunk c;
  c.set_offset(offset);
  c.set_data(data);
  return c;
}

// `c` made the last chunk of a snapshot whose data is `whole`.
inline raftpb::SnapshotChunk Last(raftpb::SnapshotChunk c, const std::string& whole) {
  c.set_last(true);
  c.set_crc32(SnapshotCrc(whole));
  return c;
}

}  // namespace shoal::raft::testing
