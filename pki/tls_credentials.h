// gRPC credentials for Shoal's mutual TLS, built from a TLS directory (tls_files.h).
//
// Server: presents the node's certificate, requests the client's (TLS 1.2 minimum, 1.3 when both
// sides have it: gRPC's defaults), proves the client holds its key, and installs the
// GrpcAuthorizer, which verifies the client certificate against the root CA and applies the
// role table to every call. Certificate-less clients still connect (NodeCA must serve joining
// nodes) but may call only the open NodeCA methods.
//
// Client: trusts only the cluster's root CA and additionally requires the server's certificate
// to carry role manager (and, when known, the expected cluster id): a worker's certificate can
// never impersonate a manager. Host names are not checked: certificates name nodes, not hosts.
//
// Server name: every certificate carries the DNS name "swarm-<role>"; clients ask for
// "swarm-manager" (kManagerServerName) through CreateManagerChannel, which sets it as the TLS
// target name. Always make channels to managers with CreateManagerChannel.
//
// Live renewal: both sides read the directory through gRPC's FileWatcherCertificateProvider,
// which re-reads it every `refresh`. After WriteTlsDir stores a renewed certificate, new
// handshakes use it within one refresh period; the server is never restarted and open
// connections keep working until they close.
//
// Thread-safe: the returned credentials may be shared.
//
//   ASSIGN_OR_RETURN(auto check, AccessCheck::Create({cluster_id, ca_pem}, clock, is_removed));
//   builder.AddListeningPort("0.0.0.0:4242", ServerCredentials(tls_dir, std::move(check)));
//   auto channel = grpc::CreateChannel(addr, ClientCredentials(tls_dir, cluster_id));
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pki/access_check.h"

namespace shoal::pki {

// How often the TLS directory is re-read. Tests use 1 second (gRPC's minimum granularity).
inline constexpr absl::Duration kDefaultTlsRefresh = absl::Seconds(30);

// The TLS server name of managers (a DNS SAN of every manager certificate).
inline constexpr char kManagerServerName[] = "swarm-manager";

// A channel to the manager at `address` ("host:port") with `credentials` (one of the functions
// below) and `args` plus the server name kManagerServerName.
std::shared_ptr<grpc::Channel> CreateManagerChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    grpc::ChannelArguments args = grpc::ChannelArguments());

// Server credentials from `tls_dir` with `check` applied to every call.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const std::string& tls_dir, std::shared_ptr<const AccessCheck> check,
    absl::Duration refresh = kDefaultTlsRefresh);

// Client credentials of a node or operator from `tls_dir`, accepting only servers whose
// certificate has role manager and, if `expected_cluster_id` is not empty, O equal to it.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials(
    const std::string& tls_dir, absl::string_view expected_cluster_id,
    absl::Duration refresh = kDefaultTlsRefresh);

// Client credentials without a client certificate, trusting `ca_pem` and requiring a manager
// certificate: how a joining node that checked the CA against its token talks to NodeCA.
std::shared_ptr<grpc::ChannelCredentials> AnonymousClientCredentials(const std::string& ca_pem);

// Client credentials that accept any server certificate and present none. Only for fetching
// the root CA before joining (GetRootCACertificate); the caller must check the CA it receives
// against its join token (CheckCaMatchesToken) and send nothing else over such a channel.
std::shared_ptr<grpc::ChannelCredentials> BootstrapClientCredentials();

}  // namespace shoal::pki
