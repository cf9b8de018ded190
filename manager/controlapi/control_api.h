// The Control API's logic (proto/control.proto) over the store, without gRPC
// (control_service.h serves it): create, inspect, update and remove services, tasks, nodes,
// secrets, configs, networks and the cluster, with Docker Swarm's rules:
//
//   - Objects are named by id, unique id prefix, or name (hostname for nodes); an ambiguous
//     prefix is refused naming how many match.
//   - Specs are validated (validation.h); secret, config and network references are resolved
//     from names to ids, and a missing one is NOT_FOUND naming the field.
//   - Updates are compare-and-swap on the version the caller read (ABORTED: read it again).
//     A service update keeps the old spec as previous_spec (for rollback) and clears the
//     update status; an update that changes nothing changes nothing. The mode and the name of
//     a service cannot change.
//   - Secret data is never returned and cannot be changed (only labels); a secret, config or
//     network in use by a service cannot be removed (FAILED_PRECONDITION naming the services).
//   - A manager cannot be removed (demote it first); a live node needs force; the last
//     manager cannot be demoted, nor one whose demotion would leave the reachable managers
//     short of a quorum.
//   - Join tokens are rotated by UpdateCluster; the cluster returned never carries its keys.
//   - A manager's status (leader, reachable) is Raft's live view, not what was stored.
//
// Writes go through the store, so through Raft: on a follower, they are forwarded to the
// leader by Raft itself, as decided here under the caller's identity (checked by mTLS).
//
// Thread-safety: thread-safe (the store is).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/id.h"
#include "manager/store/store.h"
#include "proto/control.pb.h"

namespace shoal::manager::controlapi {

class ControlApi {
 public:
  struct Options {
    store::Store* store = nullptr;
    const Clock* clock = nullptr;  // default RealClock()
    IdGenerator* ids = nullptr;    // default system randomness
    RandomBytesFn random;          // join token secrets; default SystemRandomBytes
    // The Raft members by id, as the leader sees them now; an empty map where this manager
    // does not lead (the stored status is shown then). Unset: the stored status.
    struct Member {
      bool leader = false;
      bool reachable = false;
    };
    std::function<std::map<uint64_t, Member>()> members;
  };
  explicit ControlApi(Options options);

  absl::StatusOr<api::GetNodeResponse> GetNode(const api::GetNodeRequest& r);
  absl::StatusOr<api::ListNodesResponse> ListNodes(const api::ListNodesRequest& r);
  absl::StatusOr<api::UpdateNodeResponse> UpdateNode(const api::UpdateNodeRequest& r);
  absl::StatusOr<api::RemoveNodeResponse> RemoveNode(const api::RemoveNodeRequest& r);

  absl::StatusOr<api::GetTaskResponse> GetTask(const api::GetTaskRequest& r);
  absl::StatusOr<api::ListTasksResponse> ListTasks(const api::ListTasksRequest& r);
  absl::StatusOr<api::RemoveTaskResponse> RemoveTask(const api::RemoveTaskRequest& r);

  absl::StatusOr<api::CreateServiceResponse> CreateService(const api::CreateServiceRequest& r);
  absl::StatusOr<api::GetServiceResponse> GetService(const api::GetServiceRequest& r);
  absl::StatusOr<api::UpdateServiceResponse> UpdateService(const api::UpdateServiceRequest& r);
  absl::StatusOr<api::RemoveServiceResponse> RemoveService(const api::RemoveServiceRequest& r);
  absl::StatusOr<api::ListServicesResponse> ListServices(const api::ListServicesRequest& r);
  absl::StatusOr<api::ListServiceStatusesResponse> ListServiceStatuses(
      const api::ListServiceStatusesRequest& r);

  absl::StatusOr<api::CreateNetworkResponse> CreateNetwork(const api::CreateNetworkRequest& r);
  absl::StatusOr<api::GetNetworkResponse> GetNetwork(const api::GetNetworkRequest& r);
  absl::StatusOr<api::ListNetworksResponse> ListNetworks(const api::ListNetworksRequest& r);
  absl::StatusOr<api::RemoveNetworkResponse> RemoveNetwork(const api::RemoveNetworkRequest& r);

  absl::StatusOr<api::GetClusterResponse> GetCluster(const api::GetClusterRequest& r);
  absl::StatusOr<api::ListClustersResponse> ListClusters(const api::ListClustersRequest& r);
  absl::StatusOr<api::UpdateClusterResponse> UpdateCluster(const api::UpdateClusterRequest& r);

  absl::StatusOr<api::CreateSecretResponse> CreateSecret(const api::CreateSecretRequest& r);
  absl::StatusOr<api::GetSecretResponse> GetSecret(const api::GetSecretRequest& r);
  absl::StatusOr<api::UpdateSecretResponse> UpdateSecret(const api::UpdateSecretRequest& r);
  absl::StatusOr<api::ListSecretsResponse> ListSecrets(const api::ListSecretsRequest& r);
  absl::StatusOr<api::RemoveSecretResponse> RemoveSecret(const api::RemoveSecretRequest& r);

  absl::StatusOr<api::CreateConfigResponse> CreateConfig(const api::CreateConfigRequest& r);
  absl::StatusOr<api::GetConfigResponse> GetConfig(const api::GetConfigRequest& r);
  absl::StatusOr<api::UpdateConfigResponse> UpdateConfig(const api::UpdateConfigRequest& r);
  absl::StatusOr<api::ListConfigsResponse> ListConfigs(const api::ListConfigsRequest& r);
  absl::StatusOr<api::RemoveConfigResponse> RemoveConfig(const api::RemoveConfigRequest& r);

 private:
  template <typename T>
  absl::StatusOr<T> Read(const std::string& ref);
  void FillManagerStatus(std::vector<api::Node*> nodes) const;
  absl::Status ResolveReferences(const store::ReadTx& tx, api::ServiceSpec& spec);
  template <typename T>
  absl::StatusOr<T> Written(const std::string& id);

  const Options options_;
  const Clock& clock_;
  std::unique_ptr<IdGenerator> own_ids_;
  IdGenerator& ids_;
};

}  // namespace shoal::manager::controlapi
