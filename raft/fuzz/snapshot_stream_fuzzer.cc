// Fuzz target: the chunks of a snapshot as a peer sends them (raft/snapshot_stream.h), the one
// part of a member's gRPC service that parses a stream of its own making rather than one
// message at a time. Checks, on any sequence of chunks:
// - no crash, and nothing but a status for anything malformed;
// - memory: what is held never runs ahead of the data received by more than what may be set
//   aside up front (or the string's own doubling), and a refused stream holds nothing;
// - a refusal is final: every later chunk, and Finish, get the same status;
// - what is accepted is sound: the chunks Add took were contiguous from offset 0, the data is
//   their concatenation, as long as the first chunk announced, with the CRC the last chunk
//   gave; the header is the first chunk's, for this member;
// and, on data of the input's choosing cut at a size of its choosing by the sender's code:
// - the receiver puts back exactly what was sent;
// - one byte changed anywhere is refused as a checksum mismatch (CRC-32 catches every burst
//   of up to 32 bits); a chunk dropped from the middle as a gap; the last dropped as cut short.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "raft/snapshot_stream.h"

namespace {

using shoal::raft::ForEachSnapshotChunk;
using shoal::raft::SnapshotAssembler;
using shoal::raft::SnapshotCrc;

constexpr uint64_t kSelf = 3;
constexpr uint64_t kMaxBytes = 4096;
constexpr uint64_t kMaxReserve = 64;

[[noreturn]] void Broken(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "snapshot_stream_fuzzer: %s %s\n", what, detail.c_str());
  std::abort();
}

SnapshotAssembler Receiver() {
  return SnapshotAssembler(
      [](const shoal::raftpb::Message& h) {
        return h.to() == kSelf ? absl::OkStatus()
                               : absl::FailedPreconditionError("snapshot for another member");
      },
      kMaxBytes, kMaxReserve);
}

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return at_ >= size_; }
  uint8_t Byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::string Bytes(size_t n) {
    n = std::min(n, size_ - std::min(at_, size_));
    std::string s(reinterpret_cast<const char*>(data_) + at_, n);
    at_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// A chunk as a confused or hostile peer might send it: every field of the input's choosing,
// near the values that matter (the data received so far, the limits).
shoal::raftpb::SnapshotChunk AnyChunk(Input& in, uint64_t received, uint32_t crc_so_far) {
  shoal::raftpb::SnapshotChunk c;
  const uint8_t flags = in.Byte();
  if (flags & 1) {
    shoal::raftpb::Message* h = c.mutable_header();
    h->set_type(flags & 2 ? shoal::raftpb::MSG_SNAP : shoal::raftpb::MSG_APP);
    h->set_to(flags & 4 ? kSelf : in.Byte());
    h->set_from(1);
    h->set_term(in.Byte());
    h->mutable_snapshot()->mutable_metadata()->set_index(in.Byte());
    if (flags & 8) h->mutable_snapshot()->set_data(in.Bytes(in.Byte() % 8));
    const uint8_t t = in.Byte();
    c.set_total_bytes(t < 240 ? t : t < 250 ? kMaxBytes + (t - 245) : ~uint64_t{0} - (t - 250));
  }
  const uint8_t o = in.Byte();
  c.set_offset(o < 200 ? received : o < 250 ? received + (o - 225) : o);
  c.set_data(in.Bytes(in.Byte() % 64));
  if (flags & 16) {
    c.set_last(true);
    c.set_crc32(flags & 32 ? SnapshotCrc(c.data(), crc_so_far) : in.Byte());
  }
  return c;
}

void ArbitraryStream(Input& in) {
  SnapshotAssembler rx = Receiver();
  absl::Status refused;
  std::string accepted;  // the data of the chunks Add took, in order
  uint32_t crc = 0;
  uint64_t announced = 0;
  shoal::raftpb::Message first_header;
  bool started = false;
  uint32_t last_crc = 0;
  int chunks = 0;
  while (!in.empty() && chunks++ < 64) {
    shoal::raftpb::SnapshotChunk c = AnyChunk(in, accepted.size(), crc);
    const shoal::raftpb::SnapshotChunk sent = c;
    const bool was_complete = rx.complete();
    const absl::Status s = rx.Add(std::move(c));
    if (!refused.ok()) {
      if (s != refused) Broken("a refused stream answered differently later:", s.ToString());
      continue;
    }
    if (!s.ok()) {
      refused = s;
      if (rx.held() > std::string().capacity()) Broken("a refused stream still holds data");
      continue;
    }
    if (was_complete) Broken("a chunk after the last was taken");
    if (!started) {
      if (!sent.has_header() || sent.header().type() != shoal::raftpb::MSG_SNAP ||
          sent.header().to() != kSelf || sent.total_bytes() > kMaxBytes) {
        Broken("a first chunk without a sound header was taken");
      }
      started = true;
      first_header = sent.header();
      first_header.mutable_snapshot()->clear_data();
      announced = sent.total_bytes();
    }
    if (sent.offset() != accepted.size()) Broken("a chunk out of place was taken");
    accepted += sent.data();
    crc = SnapshotCrc(sent.data(), crc);
    if (accepted.size() > announced) Broken("more than announced was taken");
    if (sent.last()) last_crc = sent.crc32();
    if (rx.received() != accepted.size()) Broken("received() is not what was taken");
    const uint64_t bound =
        std::max<uint64_t>({kMaxReserve, 2 * accepted.size(), std::string().capacity()});
    if (rx.held() > bound) {
      Broken("held more than the data and what may be set aside:",
             std::to_string(rx.held()) + " > " + std::to_string(bound));
    }
  }
  absl::StatusOr<shoal::raftpb::Message> got = std::move(rx).Finish();
  if (!refused.ok()) {
    if (got.status() != refused) Broken("Finish forgot the refusal");
    return;
  }
  if (!got.ok()) {
    if (got.status().code() != absl::StatusCode::kDataLoss) {
      Broken("Finish refused with an unexpected code:", got.status().ToString());
    }
    return;
  }
  if (!started || got->snapshot().data() != accepted || accepted.size() != announced ||
      SnapshotCrc(accepted) != last_crc) {
    Broken("accepted a snapshot that is not what was sent whole");
  }
  shoal::raftpb::Message header = *got;
  header.mutable_snapshot()->clear_data();
  if (header.SerializeAsString() != first_header.SerializeAsString()) {
    Broken("the snapshot's header is not the first chunk's");
  }
}

absl::StatusOr<shoal::raftpb::Message> Receive(std::vector<shoal::raftpb::SnapshotChunk> chunks) {
  SnapshotAssembler rx = Receiver();
  for (shoal::raftpb::SnapshotChunk& c : chunks) {
    if (rx.complete()) break;
    if (absl::Status s = rx.Add(std::move(c)); !s.ok()) return s;
  }
  return std::move(rx).Finish();
}

void RoundTrip(Input& in) {
  const size_t chunk_bytes = 1 + in.Byte() % 64;
  const uint8_t damage = in.Byte();
  const uint8_t where = in.Byte();
  const std::string data = in.Bytes(kMaxBytes);
  shoal::raftpb::Message header;
  header.set_type(shoal::raftpb::MSG_SNAP);
  header.set_from(1);
  header.set_to(kSelf);
  header.set_term(9);
  header.mutable_snapshot()->mutable_metadata()->set_index(77);
  std::vector<shoal::raftpb::SnapshotChunk> chunks;
  ForEachSnapshotChunk(header, data, chunk_bytes, [&](const shoal::raftpb::SnapshotChunk& c) {
    chunks.push_back(c);
    return true;
  });
  absl::StatusOr<shoal::raftpb::Message> got = Receive(chunks);
  if (!got.ok()) Broken("a stream the sender cut was refused:", got.status().ToString());
  if (got->snapshot().data() != data || got->snapshot().metadata().index() != 77) {
    Broken("what the sender cut came back different");
  }
  if (data.empty()) return;

  const size_t byte = (static_cast<size_t>(where) << 8 | damage) % data.size();
  std::vector<shoal::raftpb::SnapshotChunk> bent = chunks;
  std::string* d = bent[byte / chunk_bytes].mutable_data();
  (*d)[byte % chunk_bytes] = static_cast<char>((*d)[byte % chunk_bytes] ^ (1 + damage % 255));
  got = Receive(bent);
  if (got.status().code() != absl::StatusCode::kDataLoss ||
      got.status().message().find("checksum mismatch") == absl::string_view::npos) {
    Broken("a changed byte was not refused as a checksum mismatch:", got.status().ToString());
  }

  if (chunks.size() >= 3) {
    std::vector<shoal::raftpb::SnapshotChunk> gap = chunks;
    gap.erase(gap.begin() + 1 + where % (chunks.size() - 2));
    got = Receive(gap);
    if (got.status().code() != absl::StatusCode::kInvalidArgument) {
      Broken("a chunk missing from the middle was not refused as a gap:",
             got.status().ToString());
    }
  }
  std::vector<shoal::raftpb::SnapshotChunk> short_stream = chunks;
  short_stream.pop_back();
  got = Receive(short_stream);
  if (got.status().code() != absl::StatusCode::kDataLoss) {
    Broken("a stream without its last chunk was not refused as cut short:",
           got.status().ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Input in(data + 1, size - 1);
  if (data[0] & 1) {
    RoundTrip(in);
  } else {
    ArbitraryStream(in);
  }
  return 0;
}
