// AccessCheck without sockets: the decision table and the cache.
#include "pki/access_check.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/testing/test_pki.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;

class AccessCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::TestPki::Create("c1", clock_);
    ASSERT_TRUE(pki.ok());
    pki_ = *std::move(pki);
    auto check = AccessCheck::Create({"c1", pki_->ca().cert_pem()}, clock_, removed_.Check());
    ASSERT_TRUE(check.ok());
    check_ = *std::move(check);
  }
  std::string Cert(absl::string_view who, api::CertificateRole role) {
    auto b = pki_->Issue(who, role);
    EXPECT_TRUE(b.ok());
    return b->cert_pem;
  }

  ManualClock clock_;
  testing::RemovedNodes removed_;
  std::unique_ptr<testing::TestPki> pki_;
  std::unique_ptr<AccessCheck> check_;
};

TEST_F(AccessCheckTest, CreateRejectsEmptyClusterAndBadRoot) {
  EXPECT_FALSE(AccessCheck::Create({"", pki_->ca().cert_pem()}, clock_, nullptr).ok());
  EXPECT_FALSE(AccessCheck::Create({"c1", "not a cert"}, clock_, nullptr).ok());
}

TEST_F(AccessCheckTest, AllowedCallReturnsTheVerifiedPeer) {
  std::string pem = Cert("m1", api::CERTIFICATE_ROLE_MANAGER);
  auto grant = check_->Check("/shoal.raftpb.Raft/Join", &pem);
  ASSERT_TRUE(grant.ok()) << grant.status();
  ASSERT_TRUE(grant->peer.has_value());
  EXPECT_EQ(grant->peer->subject, "m1");
  EXPECT_EQ(grant->peer->role, api::CERTIFICATE_ROLE_MANAGER);
}

TEST_F(AccessCheckTest, OpenMethodTreatsARefusedCertificateAsAnonymousWithTheReason) {
  std::string pem = Cert("w1", api::CERTIFICATE_ROLE_WORKER);
  removed_.Remove("w1");
  auto grant = check_->Check("/shoal.api.NodeCA/IssueNodeCertificate", &pem);
  ASSERT_TRUE(grant.ok());
  EXPECT_FALSE(grant->peer.has_value());
  EXPECT_THAT(grant->anonymous_reason, HasSubstr("removed from the cluster"));
  auto anon = check_->Check("/shoal.api.NodeCA/GetRootCACertificate", nullptr);
  ASSERT_TRUE(anon.ok());
  EXPECT_TRUE(anon->anonymous_reason.empty());
}

// The node reads its own refusal to learn it was removed (node/daemon.h): the words are one
// function's, and they name the node exactly.
TEST_F(AccessCheckTest, ARemovedNodesRefusalSaysSoAndNamesTheNode) {
  std::string pem = Cert("w1", api::CERTIFICATE_ROLE_WORKER);
  removed_.Remove("w1");
  absl::Status s = check_->Check("/shoal.api.Dispatcher/Session", &pem).status();
  ASSERT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(IsNodeRemovedError(s.code(), s.message(), "w1")) << s;
  EXPECT_TRUE(IsNodeRemovedError(s.code(), absl::StrCat("session: ", s.message()), "w1"));
  EXPECT_FALSE(IsNodeRemovedError(s.code(), s.message(), "w"));
  EXPECT_FALSE(IsNodeRemovedError(s.code(), s.message(), ""));
  EXPECT_FALSE(IsNodeRemovedError(absl::StatusCode::kUnavailable, s.message(), "w1"));
  // Another refusal is not a removal.
  std::string other = Cert("w2", api::CERTIFICATE_ROLE_WORKER);
  s = check_->Check("/shoal.api.Control/ListNodes", &other).status();
  ASSERT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(IsNodeRemovedError(s.code(), s.message(), "w2")) << s;
}

TEST_F(AccessCheckTest, GarbageCertificateIsUnauthenticated) {
  std::string pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  absl::Status s = check_->Check("/shoal.api.Control/ListNodes", &pem).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("client certificate is unusable"));
}

TEST_F(AccessCheckTest, CachedCertificateStillExpiresAndStillGetsRevoked) {
  std::string pem = Cert("w2", api::CERTIFICATE_ROLE_WORKER);
  ASSERT_TRUE(check_->Check("/shoal.api.Dispatcher/Heartbeat", &pem).ok());
  ASSERT_TRUE(check_->Check("/shoal.api.Dispatcher/Heartbeat", &pem).ok());  // cached
  clock_.Advance(absl::Hours(24 * 91));
  EXPECT_THAT(check_->Check("/shoal.api.Dispatcher/Heartbeat", &pem).status().message(),
              HasSubstr("expired"));
}

TEST_F(AccessCheckTest, CacheOverflowAndNoCacheDoNotChangeDecisions) {
  for (size_t cache_size : {0, 2}) {
    auto check = AccessCheck::Create({"c1", pki_->ca().cert_pem(), cache_size}, clock_, nullptr);
    ASSERT_TRUE(check.ok());
    for (int i = 0; i < 5; ++i) {
      std::string pem = Cert("w" + std::to_string(i), api::CERTIFICATE_ROLE_WORKER);
      EXPECT_TRUE((*check)->Check("/shoal.api.Dispatcher/Heartbeat", &pem).ok());
      EXPECT_FALSE((*check)->Check("/shoal.api.Control/ListNodes", &pem).ok());
    }
    clock_.Advance(absl::Hours(24 * 91));
    std::string pem = Cert("late", api::CERTIFICATE_ROLE_WORKER);
    clock_.Advance(absl::Hours(24 * 91));
    EXPECT_THAT((*check)->Check("/shoal.api.Dispatcher/Heartbeat", &pem).status().message(),
                HasSubstr("expired"));
  }
}

TEST_F(AccessCheckTest, RevokedOperatorIsNamedAsAnOperator) {
  std::string pem = Cert("ci", api::CERTIFICATE_ROLE_OPERATOR);
  removed_.Remove("ci");
  EXPECT_THAT(check_->Check("/shoal.api.Control/ListNodes", &pem).status().message(),
              HasSubstr("operator certificate ci"));
}

}  // namespace
}  // namespace shoal::pki
