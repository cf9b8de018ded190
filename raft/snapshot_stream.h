// How a snapshot travels between members in chunks (Raft.InstallSnapshot): the sender's cut
// (ForEachSnapshotChunk) and the receiver's checks (SnapshotAssembler). Pure: no calls, sockets
// or threads (only the chunk's message type comes from the gRPC service), so a fuzzer
// (raft/fuzz/snapshot_stream_fuzzer) drives every check with whatever a peer might send.
//
// The stream: the first chunk carries the MSG_SNAP message with its data cleared (`header`) and
// the data's size (`total_bytes`); every chunk carries its `offset` in the data and its bytes;
// the last says `last` and carries the CRC-32 (zlib's) of the whole data.
//
// Thread-safety: none; one stream, one thread.
//
//   SnapshotAssembler in;
//   while (!in.complete() && reader->Read(&chunk)) {
//     if (absl::Status s = in.Add(std::move(chunk)); !s.ok()) return s;
//   }
//   absl::StatusOr<raftpb::Message> snap = std::move(in).Finish();
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/raft.pb.h"
#include "proto/raft_service.pb.h"

namespace shoal::raft {

// Biggest snapshot a member takes in, and what it sets aside before the data arrives: the size
// the sender announces is only a claim, and setting aside up to 4 GiB on a claim could fail the
// whole manager.
constexpr uint64_t kMaxSnapshotBytes = uint64_t{4} << 30;
constexpr uint64_t kMaxSnapshotReserve = uint64_t{64} << 20;

// CRC-32 with zlib's polynomial, continued from `crc` (0 to start).
uint32_t SnapshotCrc(const std::string& data, uint32_t crc = 0);

// Cuts `header` (a MSG_SNAP message whose snapshot data was moved out into `data`) into chunks
// of at most `chunk_bytes` (at least 1) bytes of data and calls `write` on each in order, until
// the last or until `write` returns false. Empty data goes as one chunk. Returns whether every
// chunk was written.
bool ForEachSnapshotChunk(const raftpb::Message& header, const std::string& data,
                          size_t chunk_bytes,
                          const std::function<bool(const raftpb::SnapshotChunk&)>& write);

class SnapshotAssembler {
 public:
  // Called with the header once the first chunk showed one (before its size is checked or any
  // data is set aside): an error refuses the stream with it (a snapshot for another member,
  // from a removed one).
  using HeaderCheck = std::function<absl::Status(const raftpb::Message& header)>;

  explicit SnapshotAssembler(HeaderCheck check = nullptr, uint64_t max_bytes = kMaxSnapshotBytes,
                             uint64_t max_reserve = kMaxSnapshotReserve);

  // Takes the next chunk. INVALID_ARGUMENT: no MSG_SNAP header on the first chunk, a chunk not
  // at the offset where the data received so far ends, more data than announced;
  // RESOURCE_EXHAUSTED: an announced size above max_bytes; FAILED_PRECONDITION: after the last
  // chunk; or what the header check returned. After an error every call returns it again and
  // nothing more is kept.
  absl::Status Add(raftpb::SnapshotChunk chunk);

  // The last chunk was taken (stop reading: Finish says whether the whole is sound).
  bool complete() const { return last_; }
  // Bytes of data received so far, and how much memory holds them (what the receiver set
  // aside is bounded by max_reserve until the data itself is bigger).
  uint64_t received() const { return data_.size(); }
  uint64_t held() const { return data_.capacity(); }

  // The snapshot message with its data. DATA_LOSS: the stream ended before its last chunk or
  // short of the announced size, or the data's CRC is not the one the last chunk gave; or the
  // error an Add returned.
  absl::StatusOr<raftpb::Message> Finish() &&;

 private:
  HeaderCheck check_;
  const uint64_t max_bytes_;
  const uint64_t max_reserve_;
  absl::Status error_;
  bool started_ = false;
  bool last_ = false;
  raftpb::Message header_;
  uint64_t total_ = 0;
  std::string data_;
  uint32_t crc_ = 0;       // of data_ so far
  uint32_t sent_crc_ = 0;  // the last chunk's
};

}  // namespace shoal::raft
