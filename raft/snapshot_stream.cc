#include "raft/snapshot_stream.h"

#include <zlib.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::raft {

uint32_t SnapshotCrc(const std::string& data, uint32_t crc) {
  // zlib's crc32 takes a uInt length: feed a big buffer in pieces.
  const char* p = data.data();
  size_t left = data.size();
  uLong c = crc;
  while (left > 0) {
    const size_t n = std::min<size_t>(left, size_t{1} << 30);
    c = crc32(c, reinterpret_cast<const Bytef*>(p), static_cast<uInt>(n));
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(c);
}

bool ForEachSnapshotChunk(const raftpb::Message& header, const std::string& data,
                          size_t chunk_bytes,
                          const std::function<bool(const raftpb::SnapshotChunk&)>& write) {
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  const uint32_t crc = SnapshotCrc(data);
  uint64_t offset = 0;
  do {
    raftpb::SnapshotChunk chunk;
    if (offset == 0) {
      *chunk.mutable_header() = header;
      chunk.mutable_header()->mutable_snapshot()->clear_data();
      chunk.set_total_bytes(data.size());
    }
    const size_t n = std::min<size_t>(chunk_bytes, data.size() - offset);
    chunk.set_offset(offset);
    chunk.set_data(data.substr(offset, n));
    offset += n;
    if (offset == data.size()) {
      chunk.set_last(true);
      chunk.set_crc32(crc);
    }
    if (!write(chunk)) return false;
  } while (offset < data.size());
  return true;
}

SnapshotAssembler::SnapshotAssembler(HeaderCheck check, uint64_t max_bytes, uint64_t max_reserve)
    : check_(std::move(check)), max_bytes_(max_bytes), max_reserve_(max_reserve) {}

absl::Status SnapshotAssembler::Add(raftpb::SnapshotChunk chunk) {
  if (!error_.ok()) return error_;
  auto fail = [&](absl::Status s) {
    error_ = std::move(s);
    // Nothing more is kept of a refused stream.
    std::string().swap(data_);
    header_.Clear();
    return error_;
  };
  if (last_) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("snapshot chunk at offset ", chunk.offset(), " after the last chunk")));
  }
  if (!started_) {
    if (!chunk.has_header() || chunk.header().type() != raftpb::MSG_SNAP) {
      return fail(absl::InvalidArgumentError(
          "the first snapshot chunk must carry the MSG_SNAP header"));
    }
    if (check_) {
      if (absl::Status s = check_(chunk.header()); !s.ok()) return fail(std::move(s));
    }
    if (chunk.total_bytes() > max_bytes_) {
      return fail(absl::ResourceExhaustedError(
          absl::StrCat("snapshot of ", chunk.total_bytes(), " bytes exceeds the limit of ",
                       max_bytes_, " bytes")));
    }
    header_ = std::move(*chunk.mutable_header());
    header_.mutable_snapshot()->clear_data();
    total_ = chunk.total_bytes();
    data_.reserve(std::min(total_, max_reserve_));
    started_ = true;
  }
  if (chunk.offset() != data_.size()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "snapshot chunk at offset ", chunk.offset(), " but ", data_.size(), " bytes received")));
  }
  // Checked before the bytes are kept: a chunk past the announced size sets nothing aside.
  if (chunk.data().size() > total_ - data_.size()) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "snapshot chunks exceed the announced size of ", total_, " bytes")));
  }
  crc_ = SnapshotCrc(chunk.data(), crc_);
  data_ += chunk.data();
  if (chunk.last()) {
    last_ = true;
    sent_crc_ = chunk.crc32();
  }
  return absl::OkStatus();
}

absl::StatusOr<raftpb::Message> SnapshotAssembler::Finish() && {
  if (!error_.ok()) return error_;
  if (!last_ || data_.size() != total_) {
    return absl::DataLossError(absl::StrCat("snapshot stream ended early: ", data_.size(), " of ",
                                            total_, " bytes received"));
  }
  if (crc_ != sent_crc_) {
    return absl::DataLossError(absl::StrCat(
        "snapshot checksum mismatch: the ", data_.size(), " bytes received have CRC-32 ", crc_,
        ", the sender's last chunk says ", sent_crc_,
        "; nothing was installed, the sender sends it again"));
  }
  raftpb::Message m = std::move(header_);
  m.mutable_snapshot()->set_data(std::move(data_));
  return m;
}

}  // namespace shoal::raft
