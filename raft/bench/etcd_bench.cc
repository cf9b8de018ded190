// The etcd 3.4 side of the Raft benchmark (issue #3): closed-loop KV.Put on a running etcd
// cluster's leader, measured by the same load generator (raft/bench/load.h) as Shoal's side.
//
//   bazel run -c opt //raft:bench_etcd -- --clients 64 --value-bytes 256 --seconds 10
//       [--endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379]  (the default)
//
// prints one JSON line on stdout ("system":"etcd", throughput in acknowledged writes per second,
// p50_ms, p99_ms, ...); progress goes to stderr. `--leader-only` waits until the cluster is
// healthy (every member answers and names the same leader), prints the leader and exits:
// deploy/bench-etcd.sh uses it as its readiness probe.
//
// Connections: client i uses channel i % channels, each channel its own HTTP/2 connection to
// the leader (by default min(clients, 4)). etcd serves every stream in its own goroutine, so one
// connection would do for the server; a few spread the client-side gRPC work, which shares the
// machine's cores with the three etcd members. Each client writes its own key, so every Put is
// an ordinary overwrite (a new MVCC revision, one Raft entry), as in etcd's own `benchmark put`.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "raft/bench/async_unary.h"
#include "raft/bench/etcd_kv.grpc.pb.h"
#include "raft/bench/etcd_leader.h"
#include "raft/bench/load.h"

namespace shoal::raft::bench {
namespace {

constexpr absl::Duration kStatusTimeout = absl::Seconds(1);
constexpr absl::Duration kPutTimeout = absl::Seconds(5);
constexpr absl::Duration kLeaderPollInterval = absl::Milliseconds(100);

std::shared_ptr<grpc::Channel> Dial(const std::string& endpoint, int index) {
  grpc::ChannelArguments args;
  // Channels with equal arguments share one connection through gRPC's global subchannel pool;
  // a local pool (and a distinct argument) gives each channel a connection of its own.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("shoal.bench.channel_index", index);
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

MemberStatus QueryStatus(const std::string& endpoint) {
  MemberStatus m;
  m.endpoint = endpoint;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> stub =
      etcdserverpb::Maintenance::NewStub(Dial(endpoint, 0));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kStatusTimeout));
  etcdserverpb::StatusResponse response;
  m.status = FromGrpcStatus(stub->Status(&context, etcdserverpb::StatusRequest(), &response));
  if (m.status.ok()) {
    m.member_id = response.header().member_id();
    m.leader = response.leader();
  }
  return m;
}

// Polls every endpoint until PickLeader succeeds or `timeout` has passed; then returns its
// last answer. Elections take a few hundred milliseconds after a cluster starts.
absl::StatusOr<MemberStatus> FindLeader(const std::vector<std::string>& endpoints,
                                        absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::vector<MemberStatus> members;
    for (const std::string& endpoint : endpoints) members.push_back(QueryStatus(endpoint));
    absl::StatusOr<size_t> leader = PickLeader(members);
    if (leader.ok()) return members[*leader];
    if (absl::Now() + kLeaderPollInterval > deadline) {
      return absl::Status(leader.status().code(), absl::StrCat("no healthy etcd cluster after ",
                                                               absl::FormatDuration(timeout), ": ",
                                                               leader.status().message()));
    }
    absl::SleepFor(kLeaderPollInterval);
  }
}

struct Flags {
  std::string endpoints = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";
  int clients = 1;
  uint64_t value_bytes = 256;
  double seconds = 10;
  double warmup_seconds = 1;
  int channels = 0;
  // How the clients call: see raft_bench's --client-api.
  std::string client_api = "async";
  double leader_timeout_seconds = 30;
  bool leader_only = false;
  // The members' process ids, in the order of `endpoints`: with them, the JSON line gives the
  // CPU per operation of the leader, the followers and the clients, as //raft:bench does.
  std::string member_pids;
};

int Run(const Flags& flags) {
  std::vector<std::string> endpoints = absl::StrSplit(flags.endpoints, ',', absl::SkipWhitespace());
  absl::StatusOr<MemberStatus> leader =
      FindLeader(endpoints, absl::Seconds(flags.leader_timeout_seconds));
  if (!leader.ok()) {
    log::Error("bench_etcd", "cannot find the leader", {{"error", leader.status()}});
    return 1;
  }
  log::Info(
      "bench_etcd", "found the leader",
      {{"endpoint", leader->endpoint}, {"member_id", absl::StrCat(absl::Hex(leader->member_id))}});
  if (flags.leader_only) {
    std::printf("%s\n", leader->endpoint.c_str());
    return 0;
  }

  std::vector<int> pids;
  for (absl::string_view p : absl::StrSplit(flags.member_pids, ',', absl::SkipWhitespace())) {
    int pid = 0;
    if (!absl::SimpleAtoi(p, &pid) || pid <= 0) {
      log::Error("bench_etcd", "--member-pids takes process ids separated by commas",
                 {{"got", flags.member_pids}});
      return 2;
    }
    pids.push_back(pid);
  }
  if (!pids.empty() && pids.size() != endpoints.size()) {
    log::Error("bench_etcd", "--member-pids needs one process id per endpoint",
               {{"endpoints", endpoints.size()}, {"pids", pids.size()}});
    return 2;
  }
  const int channel_count = flags.channels > 0 ? flags.channels : std::min(flags.clients, 4);
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  for (int i = 0; i < channel_count; ++i) {
    stubs.push_back(etcdserverpb::KV::NewStub(Dial(leader->endpoint, i)));
  }
  std::vector<std::string> keys;
  for (int c = 0; c < flags.clients; ++c) keys.push_back(absl::StrCat("shoal-bench/", c));

  LoadOptions options;
  options.clients = flags.clients;
  options.duration = absl::Seconds(flags.seconds);
  options.value_bytes = flags.value_bytes;
  options.warmup = absl::Seconds(flags.warmup_seconds);
  log::Info("bench_etcd", "running",
            {{"clients", flags.clients},
             {"channels", channel_count},
             {"value_bytes", flags.value_bytes},
             {"seconds", flags.seconds},
             {"warmup_seconds", flags.warmup_seconds}});
  // CPU per call over the warm-up and the window alike, as on the Shoal side.
  std::vector<double> cpu_before;
  for (int pid : pids) cpu_before.push_back(ProcessCpuSeconds(pid));
  const double client_before = ProcessCpuSeconds(0);
  std::atomic<uint64_t> calls{0};
  // Every applied Put has a revision: zero would mean we misread etcd's wire format.
  const auto check = [](const grpc::Status& s, const etcdserverpb::PutResponse& response) {
    absl::Status status = FromGrpcStatus(s);
    if (status.ok() && response.header().revision() <= 0) {
      return absl::InternalError("etcd acknowledged a Put without a revision");
    }
    return status;
  };
  LoadResult result;
  if (flags.client_api == "sync") {
    result = RunLoad(options, [&](int client, uint64_t, const std::string& value) {
      calls.fetch_add(1, std::memory_order_relaxed);
      etcdserverpb::PutRequest request;
      request.set_key(keys[client]);
      request.set_value(value);
      etcdserverpb::PutResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + kPutTimeout));
      const grpc::Status s = stubs[client % channel_count]->Put(&context, request, &response);
      return check(s, response);
    });
  } else {
    AsyncUnaryCaller caller;  // destroyed before the CPU is read: its thread is the clients'
    result = RunLoadAsync(options, [&](int client, uint64_t, const std::string& value,
                                       DoneFn done) {
      calls.fetch_add(1, std::memory_order_relaxed);
      etcdserverpb::PutRequest request;
      request.set_key(keys[client]);
      request.set_value(value);
      etcdserverpb::KV::Stub* stub = stubs[client % channel_count].get();
      caller.Call<etcdserverpb::PutResponse>(
          absl::Now() + kPutTimeout,
          [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
            return stub->PrepareAsyncPut(context, request, cq);
          },
          [&check, done = std::move(done)](const grpc::Status& s,
                                           etcdserverpb::PutResponse& response) {
            done(check(s, response));
          });
    });
  }

  const double per_call = 1e6 / std::max<uint64_t>(calls.load(), 1);
  double leader_us = 0, followers_us = 0;
  for (size_t i = 0; i < pids.size(); ++i) {
    const double us = (ProcessCpuSeconds(pids[i]) - cpu_before[i]) * per_call;
    (endpoints[i] == leader->endpoint ? leader_us : followers_us) += us;
  }
  const double client_us = (ProcessCpuSeconds(0) - client_before) * per_call;
  if (pids.empty()) {
    std::printf("%s\n", ToJson(result, {{"system", "etcd"},
                                        {"endpoint", leader->endpoint},
                                        {"channels", channel_count},
                                        {"client_api", flags.client_api},
                                        {"allocator", ProcessAllocator()},
                                        {"warmup_seconds", flags.warmup_seconds},
                                        {"cpu_us_per_op_clients", client_us}})
                            .c_str());
  } else {
    std::printf("%s\n", ToJson(result, {{"system", "etcd"},
                                        {"endpoint", leader->endpoint},
                                        {"channels", channel_count},
                                        {"client_api", flags.client_api},
                                        {"allocator", ProcessAllocator()},
                                        {"warmup_seconds", flags.warmup_seconds},
                                        {"cpu_us_per_op_leader", leader_us},
                                        {"cpu_us_per_op_followers", followers_us},
                                        {"cpu_us_per_op_clients", client_us}})
                            .c_str());
  }
  std::fflush(stdout);
  if (result.ops == 0) {
    log::Error("bench_etcd", "no write succeeded", {{"first_error", result.first_error}});
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace shoal::raft::bench

int main(int argc, char** argv) {
  shoal::raft::bench::PrepareBenchmarkProcess();  // as raft_bench does: same client code, same cost
  CLI::App app{"Closed-loop KV.Put load on an etcd v3 cluster's leader; prints one JSON line"};
  shoal::raft::bench::Flags flags;
  app.add_option("--endpoints", flags.endpoints, "every member's client address, comma-separated")
      ->capture_default_str();
  app.add_option("--clients", flags.clients, "concurrent closed-loop clients")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--value-bytes", flags.value_bytes, "bytes per value")->capture_default_str();
  app.add_option("--seconds", flags.seconds, "measured seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup-seconds", flags.warmup_seconds, "unmeasured seconds before")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--channels", flags.channels,
                 "connections to the leader shared by the clients (0: min(clients, 4))")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--client-api", flags.client_api,
                 "async: the clients' calls completed on one thread polling gRPC's completion "
                 "queue; sync: a thread per client blocked in each call (before 2026-12-04)")
      ->check(CLI::IsMember({"async", "sync"}))
      ->capture_default_str();
  app.add_option("--leader-timeout", flags.leader_timeout_seconds,
                 "seconds to wait for a healthy cluster")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--member-pids", flags.member_pids,
                 "the members' process ids, in the order of --endpoints (for CPU per operation)");
  app.add_flag("--leader-only", flags.leader_only,
               "wait for a healthy cluster, print the leader's endpoint and exit");
  CLI11_PARSE(app, argc, argv);
  return shoal::raft::bench::Run(flags);
}
