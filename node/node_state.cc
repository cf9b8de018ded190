#include "node/node_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace shoal::node {

absl::StatusOr<NodeState> LoadNodeState(const std::string& state_dir) {
  const std::string path = state_dir + "/node.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::stringstream text;
  text << in.rdbuf();
  try {
    const nlohmann::json j = nlohmann::json::parse(text.str());
    NodeState s;
    s.node_id = j.at("node_id").get<std::string>();
    s.cluster_id = j.at("cluster_id").get<std::string>();
    s.role = j.at("role").get<std::string>();
    s.raft_id = j.value("raft_id", uint64_t{0});
    s.listen_addr = j.value("listen_addr", std::string());
    s.advertise_addr = j.value("advertise_addr", std::string());
    s.managers = j.value("managers", std::vector<std::string>());
    if (s.role != "manager" && s.role != "worker") {
      return absl::DataLossError(absl::StrCat(path, ": role is \"", s.role,
                                              "\", not \"manager\" or \"worker\""));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, " is damaged: ", e.what()));
  }
}

absl::Status SaveNodeState(const std::string& state_dir, const NodeState& state) {
  nlohmann::json j;
  j["node_id"] = state.node_id;
  j["cluster_id"] = state.cluster_id;
  j["role"] = state.role;
  j["raft_id"] = state.raft_id;
  j["listen_addr"] = state.listen_addr;
  j["advertise_addr"] = state.advertise_addr;
  j["managers"] = state.managers;
  const std::string text = j.dump(2) + "\n";
  const std::string path = state_dir + "/node.json";
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("writing ", tmp, ": ", std::strerror(errno)));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("writing ", path, ": ", std::strerror(ok ? errno : err)));
  }
  return absl::OkStatus();
}

}  // namespace shoal::node
