// Costs of the PKI's hot paths: the per-call authorization check (cached and not), signing,
// key generation and token handling. Run: bazel run -c opt //pki:pki_benchmark
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "common/testing/manual_clock.h"
#include "pki/access_check.h"
#include "pki/csr.h"
#include "pki/join_token.h"
#include "pki/root_ca.h"
#include "pki/testing/test_pki.h"

namespace shoal::pki {
namespace {

struct Fixture {
  ManualClock clock;
  std::unique_ptr<testing::TestPki> pki;
  std::string cert;
  Fixture() {
    pki = *testing::TestPki::Create("c1", clock);
    cert = pki->Issue("w1", api::CERTIFICATE_ROLE_WORKER)->cert_pem;
  }
};

void BM_AccessCheckCached(benchmark::State& state) {
  Fixture f;
  auto check = *AccessCheck::Create({"c1", f.pki->ca().cert_pem()}, f.clock, nullptr);
  for (auto _ : state) {
    benchmark::DoNotOptimize(check->Check("/shoal.api.Dispatcher/Heartbeat", &f.cert));
  }
}
BENCHMARK(BM_AccessCheckCached);

void BM_AccessCheckUncached(benchmark::State& state) {
  Fixture f;
  AccessCheck::Options options{"c1", f.pki->ca().cert_pem(), /*cache_size=*/0};
  auto check = *AccessCheck::Create(options, f.clock, nullptr);
  for (auto _ : state) {
    benchmark::DoNotOptimize(check->Check("/shoal.api.Dispatcher/Heartbeat", &f.cert));
  }
}
BENCHMARK(BM_AccessCheckUncached);

void BM_SignCsr(benchmark::State& state) {
  Fixture f;
  KeyAndCsr kc = *GenerateKeyAndCsr("n");
  RootCa::SignRequest req{kc.csr_pem, "n1", api::CERTIFICATE_ROLE_WORKER, "c1"};
  for (auto _ : state) benchmark::DoNotOptimize(f.pki->ca().Sign(req));
}
BENCHMARK(BM_SignCsr);

void BM_GenerateKeyAndCsr(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(GenerateKeyAndCsr("n"));
}
BENCHMARK(BM_GenerateKeyAndCsr);

void BM_ParseJoinToken(benchmark::State& state) {
  std::string token = GenerateJoinToken(std::string(32, 'x'), SeededRandomBytes(1)).ToString();
  for (auto _ : state) benchmark::DoNotOptimize(ParseJoinToken(token));
}
BENCHMARK(BM_ParseJoinToken);

void BM_JoinTokensEqual(benchmark::State& state) {
  std::string token = GenerateJoinToken(std::string(32, 'x'), SeededRandomBytes(1)).ToString();
  std::string other = token;
  other.back() = other.back() == 'a' ? 'b' : 'a';
  for (auto _ : state) benchmark::DoNotOptimize(JoinTokensEqual(token, other));
}
BENCHMARK(BM_JoinTokensEqual);

}  // namespace
}  // namespace shoal::pki
