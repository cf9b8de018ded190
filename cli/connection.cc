#include "cli/connection.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "pki/certificate.h"
#include "pki/tls_credentials.h"
#include "pki/tls_files.h"

namespace shoal::cli {
namespace {

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

}  // namespace

absl::StatusOr<std::string> ClusterIdOf(const std::string& tls_dir) {
  auto bundle = pki::ReadTlsDir(tls_dir);
  if (!bundle.ok()) {
    return absl::Status(bundle.status().code(),
                        absl::StrCat("--tls-dir ", tls_dir, ": ", bundle.status().message()));
  }
  auto info = pki::ParseCertificate(bundle->cert_pem);
  if (!info.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-dir ", tls_dir, ": ", pki::kCertFile, ": ", info.status().message()));
  }
  return info->cluster_id;
}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Create(
    const ConnectOptions& options) {
  std::vector<Endpoint> endpoints;
  const bool local = options.hosts.empty();
  if (local) {
    Endpoint e;
    e.address = absl::StrCat("unix:", options.socket);
    e.channel = grpc::CreateChannel(e.address, grpc::InsecureChannelCredentials());
    e.stub = api::Control::NewStub(e.channel);
    endpoints.push_back(std::move(e));
  } else {
    if (options.tls_dir.empty()) {
      return absl::InvalidArgumentError(
          "--host needs --tls-dir (or SWARMCTL_TLS_DIR): a directory with key.pem, cert.pem and "
          "ca.pem (see `swarmctl ca issue-operator`)");
    }
    auto cluster = ClusterIdOf(options.tls_dir);
    if (!cluster.ok()) return cluster.status();
    auto credentials = pki::ClientCredentials(options.tls_dir, *cluster);
    for (const std::string& host : options.hosts) {
      Endpoint e;
      e.address = host;
      e.channel = pki::CreateManagerChannel(host, credentials);
      e.stub = api::Control::NewStub(e.channel);
      endpoints.push_back(std::move(e));
    }
  }
  return std::unique_ptr<ControlClient>(new ControlClient(options, std::move(endpoints), local));
}

bool ControlClient::Settle(Endpoint& e) {
  const auto deadline = Deadline(options_.connect_timeout);
  grpc_connectivity_state state = e.channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN) {
    if (!e.channel->WaitForStateChange(state, deadline)) return false;
    state = e.channel->GetState(true);
  }
  return true;
}

absl::Status ControlClient::CallWithFailover(
    const std::function<grpc::Status(api::Control::StubInterface&, grpc::ClientContext*)>& fn) {
  return Failover([&](Endpoint& e, grpc::ClientContext* ctx, bool*) { return fn(*e.stub, ctx); },
                  /*deadline=*/true);
}

absl::Status ControlClient::StreamWithFailover(
    const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&, grpc::ClientContext*,
                                     bool*)>& fn) {
  return Failover([&](Endpoint& e, grpc::ClientContext* ctx,
                      bool* received) { return fn(e.channel, ctx, received); },
                  /*deadline=*/false);
}

absl::Status ControlClient::Failover(
    const std::function<grpc::Status(Endpoint&, grpc::ClientContext*, bool*)>& fn, bool deadline) {
  const absl::Time give_up = absl::Now() + options_.retry_for;
  absl::Duration backoff = absl::Milliseconds(100);
  std::string last;
  while (true) {
    bool answered_unavailable = false;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const size_t index = (current_ + i) % endpoints_.size();
      Endpoint& e = endpoints_[index];
      if (!Settle(e)) {
        last = absl::StrCat(e.address, ": no connection within ",
                            absl::FormatDuration(options_.connect_timeout));
        continue;
      }
      const bool connected = e.channel->GetState(false) == GRPC_CHANNEL_READY;
      grpc::ClientContext ctx;
      if (deadline) ctx.set_deadline(Deadline(options_.call_timeout));
      bool received = false;
      const grpc::Status s = fn(e, &ctx, &received);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE || received) {
        current_ = index;
        return FromGrpcStatus(s);
      }
      last = s.error_message();
      answered_unavailable = answered_unavailable || connected;
    }
    // Retry only while some manager answered (no leader yet); dead addresses fail at once.
    if (!answered_unavailable || absl::Now() + backoff > give_up) break;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
  std::vector<std::string> addresses;
  for (const Endpoint& e : endpoints_) addresses.push_back(e.address);
  if (local_) {
    return absl::UnavailableError(absl::StrCat("cannot reach swarmd at ", addresses[0], ": ", last,
                                               " (is swarmd running? use --host for a remote "
                                               "manager)"));
  }
  return absl::UnavailableError(
      absl::StrCat("cannot reach any manager at ", absl::StrJoin(addresses, ", "), ": ", last));
}

std::unique_ptr<api::NodeControl::Stub> NodeControlStub(const std::string& socket) {
  return api::NodeControl::NewStub(
      grpc::CreateChannel(absl::StrCat("unix:", socket), grpc::InsecureChannelCredentials()));
}

}  // namespace shoal::cli
