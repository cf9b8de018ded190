#include "raft/bench/id_set.h"

namespace shoal::raft::bench {

IdSetStateMachine::Id IdSetStateMachine::Decode(absl::string_view data) {
  uint64_t a = 0, b = 0;
  for (int i = 0; i < 8; ++i) {
    a = a << 8 | static_cast<uint8_t>(data[i]);
    b = b << 8 | static_cast<uint8_t>(data[8 + i]);
  }
  return {a, b};
}

void IdSetStateMachine::AppendLocked(const Id& id) {
  const size_t n = ids_.size() - 1;  // its place: ids_ holds it already
  if (n % kChunkIds == 0) chunks_.push_back(std::make_shared<Chunk>());
  (*chunks_.back())[n % kChunkIds] = id;
}

void IdSetStateMachine::Apply(uint64_t /*index*/, absl::string_view data) {
  if (data.size() < kIdBytes) return;
  const Id id = Decode(data);
  absl::MutexLock lock(&mu_);
  if (ids_.insert(id).second) AppendLocked(id);
}

std::function<std::string()> IdSetStateMachine::SnapshotLater() {
  absl::MutexLock lock(&mu_);
  // The first n ids: written before this, never written again. The node thread appends after
  // them, in the last chunk too, while the function reads them.
  return [chunks = chunks_, n = ids_.size()] {
    std::string out;
    out.reserve(n * kIdBytes);
    for (size_t i = 0; i < n; ++i) {
      const Id& id = (*chunks[i / kChunkIds])[i % kChunkIds];
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>(id.first >> (56 - 8 * b)));
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>(id.second >> (56 - 8 * b)));
    }
    return out;
  };
}

absl::Status IdSetStateMachine::Restore(absl::string_view data) {
  absl::MutexLock lock(&mu_);
  ids_.clear();
  // New chunks: a snapshot function still running keeps the old ones.
  chunks_.clear();
  for (size_t i = 0; i + kIdBytes <= data.size(); i += kIdBytes) {
    const Id id = Decode(data.substr(i, kIdBytes));
    if (ids_.insert(id).second) AppendLocked(id);
  }
  return absl::OkStatus();
}

size_t IdSetStateMachine::size() {
  absl::MutexLock lock(&mu_);
  return ids_.size();
}

}  // namespace shoal::raft::bench
