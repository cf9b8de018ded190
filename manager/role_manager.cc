#include "manager/role_manager.h"

#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal::manager {

using store::Event;
using store::Kind;
using store::ReadTx;
using store::WriteTx;

namespace {
absl::Status NoNode() { return absl::UnavailableError("this manager's Raft member is not running"); }
}  // namespace

uint64_t NodeMembership::self() const {
  raft::Node* n = node_();
  return n == nullptr ? 0 : n->GetStatus().id;
}

absl::StatusOr<std::vector<raft::Node::MemberProgress>> NodeMembership::Members() {
  raft::Node* n = node_();
  if (n == nullptr) return NoNode();
  return n->Members().get();
}

absl::Status NodeMembership::Change(raftpb::ConfChange::Type type, uint64_t raft_id,
                                    const std::string& context) {
  raft::Node* n = node_();
  if (n == nullptr) return NoNode();
  raftpb::ConfChange cc;
  cc.set_type(type);
  cc.set_node_id(raft_id);
  cc.set_context(context);
  absl::MutexLock lock(&change_mu_);
  // A change proposed by an earlier leader may still be on its way to being applied here:
  // it is, within a few heartbeats, so the proposal is made again for a bounded while.
  absl::Status s;
  for (int attempt = 0; attempt < 50; ++attempt) {
    s = n->ProposeConfChange(cc).get();
    if (!absl::IsFailedPrecondition(s) ||
        !absl::StartsWith(s.message(), "membership change dropped: another one")) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return s;
}

absl::Status NodeMembership::Remove(uint64_t raft_id) {
  return Change(raftpb::ConfChange::TYPE_REMOVE_NODE, raft_id, "");
}

absl::Status NodeMembership::AddLearner(uint64_t raft_id, const std::string& context) {
  return Change(raftpb::ConfChange::TYPE_ADD_LEARNER_NODE, raft_id, context);
}

absl::Status NodeMembership::Promote(uint64_t raft_id, const std::string& context) {
  return Change(raftpb::ConfChange::TYPE_ADD_NODE, raft_id, context);
}

void NodeMembership::TransferLeadership(uint64_t to) {
  if (raft::Node* n = node_()) n->TransferLeadership(to);
}

void RoleManager::Start() {
  loop_.Start([this](absl::Time deadline) { Step(deadline); });
}

size_t RoleManager::Step(absl::Time deadline) {
  if (loop_.watch() == nullptr) {
    loop_.set_watch(options_.store->Watch([](const Event& e) { return e.kind == Kind::kNode; }));
    dirty_ = true;
  }
  absl::Time wait_until = dirty_ ? absl::InfinitePast() : deadline;
  while (true) {
    auto e = loop_.watch()->Next(wait_until);
    if (!e.ok()) {
      loop_.set_watch(options_.store->Watch([](const Event& ev) { return ev.kind == Kind::kNode; }));
      dirty_ = true;
      break;
    }
    if (!e->has_value()) break;
    dirty_ = true;
    wait_until = absl::InfinitePast();
  }
  // Learners that joined: voters once caught up (the leader refuses before). Looked at on
  // every step: a member is added without a store event.
  size_t done = 0;
  if (auto members = options_.membership->Members(); members.ok()) {
    std::map<uint64_t, api::Node> by_raft_id;
    bool learners = false;
    for (const auto& m : *members) learners |= m.learner;
    if (learners) {
      options_.store->View([&](const ReadTx& tx) {
        for (const api::Node* n : tx.List<api::Node>()) {
          if (n->manager_status().raft_id() != 0) by_raft_id[n->manager_status().raft_id()] = *n;
        }
      });
    }
    for (const auto& m : *members) {
      if (!m.learner) continue;
      auto it = by_raft_id.find(m.id);
      raftpb::RaftMember ctx;
      ctx.set_raft_id(m.id);
      if (it != by_raft_id.end()) {
        ctx.set_node_id(it->second.meta().id());
        ctx.set_addr(it->second.manager_status().addr());
      }
      if (options_.membership->Promote(m.id, ctx.SerializeAsString()).ok()) ++done;
    }
  }
  if (!dirty_) return done;
  dirty_ = false;

  std::vector<api::Node> changing;
  options_.store->View([&](const ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      if (n->spec().desired_role() != n->role()) changing.push_back(*n);
    }
  });
  for (const api::Node& n : changing) {
    const bool demote = n.spec().desired_role() == api::NODE_ROLE_WORKER;
    const uint64_t raft_id = n.manager_status().raft_id();
    if (demote && raft_id != 0) {
      auto members = options_.membership->Members();
      if (!members.ok()) {
        waiting_ = std::string(members.status().message());
        dirty_ = true;  // look again (this manager may be about to lose its leadership)
        continue;
      }
      const bool member = std::any_of(members->begin(), members->end(),
                                      [&](const auto& m) { return m.id == raft_id; });
      if (member) {
        size_t voters = 0, reachable_others = 0;
        uint64_t successor = 0, best_match = 0;
        for (const auto& m : *members) {
          if (m.learner) continue;
          ++voters;
          if (m.id == raft_id || !m.active) continue;
          ++reachable_others;
          if (m.id != options_.membership->self() && m.match >= best_match) {
            best_match = m.match;
            successor = m.id;
          }
        }
        if (voters <= 1) {
          waiting_ = absl::StrCat("node ", n.meta().id(), " is the last manager");
          continue;
        }
        if (reachable_others < (voters - 1) / 2 + 1) {
          waiting_ = absl::StrCat("demoting node ", n.meta().id(), " would leave ",
                                  reachable_others, " reachable managers of ", voters - 1,
                                  ": waiting for the others");
          dirty_ = true;
          continue;
        }
        if (raft_id == options_.membership->self()) {
          // A leader does not remove itself: the next leader will.
          if (successor != 0) options_.membership->TransferLeadership(successor);
          waiting_ = "handing the leadership over before leaving the managers";
          continue;
        }
        if (absl::Status s = options_.membership->Remove(raft_id); !s.ok()) {
          waiting_ = std::string(s.message());
          dirty_ = true;
          continue;
        }
      }
    }
    auto written = options_.store->Update(
        [&](WriteTx& tx) -> absl::Status {
          const api::Node* cur = tx.Get<api::Node>(n.meta().id());
          if (cur == nullptr || cur->spec().desired_role() == cur->role()) return absl::OkStatus();
          api::Node u = *cur;
          u.set_role(u.spec().desired_role());
          if (demote) u.clear_manager_status();
          return tx.Update(u);
        },
        options_.leader_term);
    if (written.ok()) {
      ++done;
    } else {
      dirty_ = true;
    }
  }
  return done;
}

}  // namespace shoal::manager
