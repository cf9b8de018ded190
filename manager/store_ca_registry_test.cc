// The CA over the replicated store: which role a renewal is signed with while a node is
// promoted or demoted (the node object's role, as SwarmKit's CA does, not its desired role),
// and which nodes are revoked (removed with `node rm`).
#include "manager/store_ca_registry.h"

#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"
#include "pki/csr.h"
#include "pki/node_ca_service.h"
#include "pki/root_ca.h"

namespace shoal::manager {
namespace {

constexpr char kNode[] = "n1";

class StoreCaRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raft_.Join(&store_);
    auto root = pki::NewClusterRootCa(RealClock(), SystemRandomBytes);
    ASSERT_TRUE(root.ok()) << root.status();
    auto ca = pki::RootCa::FromProto(*root, RealClock());
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    auto service = pki::NodeCaService::Create({"cluster"}, *ca_, registry_, ids_, RealClock());
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    api::Node node;
    node.mutable_meta()->set_id(kNode);
    node.set_role(api::NODE_ROLE_WORKER);
    node.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
    auto r = store_.Update([&](store::WriteTx& tx) { return tx.Create(node); });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // Sets the node's desired role and role, as `node promote/demote` and the role manager do.
  void SetRoles(api::NodeRole desired, api::NodeRole role) {
    auto r = store_.Update([&](store::WriteTx& tx) {
      api::Node n = *tx.Get<api::Node>(kNode);
      n.mutable_spec()->set_desired_role(desired);
      n.set_role(role);
      return tx.Update(n);
    });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // The role of the certificate a renewal of the node gets.
  api::CertificateRole Renew() {
    auto kc = pki::GenerateKeyAndCsr("renewal");
    EXPECT_TRUE(kc.ok());
    api::IssueNodeCertificateRequest req;
    req.set_csr(kc->csr_pem);
    pki::CertificateInfo peer;
    peer.subject = kNode;
    peer.role = api::CERTIFICATE_ROLE_WORKER;
    peer.cluster_id = "cluster";
    auto issued = service_->Issue(req, &peer, "");
    EXPECT_TRUE(issued.ok()) << issued.status();
    api::CertificateRole role = api::CERTIFICATE_ROLE_UNSPECIFIED;
    store_.View(
        [&](const store::ReadTx& tx) { role = tx.Get<api::Node>(kNode)->certificate().role(); });
    return role;
  }

  store::testing::FakeRaft raft_;
  store::Store store_{&raft_};
  StoreCaRegistry registry_{&store_};
  IdGenerator ids_;
  std::unique_ptr<pki::RootCa> ca_;
  std::unique_ptr<pki::NodeCaService> service_;
};

TEST_F(StoreCaRegistryTest, RenewalsFollowTheRoleTheClusterGaveTheNode) {
  EXPECT_EQ(Renew(), api::CERTIFICATE_ROLE_WORKER);
  // Promoted, before the role manager made it a manager: still a worker's certificate.
  SetRoles(api::NODE_ROLE_MANAGER, api::NODE_ROLE_WORKER);
  EXPECT_EQ(Renew(), api::CERTIFICATE_ROLE_WORKER);
  SetRoles(api::NODE_ROLE_MANAGER, api::NODE_ROLE_MANAGER);
  EXPECT_EQ(Renew(), api::CERTIFICATE_ROLE_MANAGER);
  // Demoted, while its Raft member is not removed yet: it keeps a manager's certificate (its
  // Raft peers refuse a worker's), and gets a worker's once the role manager is done.
  SetRoles(api::NODE_ROLE_WORKER, api::NODE_ROLE_MANAGER);
  EXPECT_EQ(Renew(), api::CERTIFICATE_ROLE_MANAGER);
  SetRoles(api::NODE_ROLE_WORKER, api::NODE_ROLE_WORKER);
  EXPECT_EQ(Renew(), api::CERTIFICATE_ROLE_WORKER);
}

TEST_F(StoreCaRegistryTest, AJoiningNodeGetsTheTokensRoleAsBothRoles) {
  pki::NodeRecord record;
  record.node_id = "n2";
  record.desired_role = api::NODE_ROLE_MANAGER;
  record.role = api::NODE_ROLE_MANAGER;
  ASSERT_TRUE(registry_.CreateNode(record).ok());
  auto got = registry_.GetNode("n2");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->desired_role, api::NODE_ROLE_MANAGER);
  EXPECT_EQ(got->role, api::NODE_ROLE_MANAGER);
}

// `node rm` lists the node in the cluster object; from then on the CA refuses to renew its
// certificate and every call it makes is refused. Operators are never nodes.
TEST_F(StoreCaRegistryTest, ANodeListedAsRemovedIsRevoked) {
  EXPECT_FALSE(registry_.IsRemoved("w1"));  // no cluster object yet
  api::Cluster c;
  c.mutable_meta()->set_id("cluster1");
  c.mutable_spec()->mutable_annotations()->set_name("default");
  (*c.mutable_removed_nodes())["w1"].set_seconds(1'900'000'000);
  auto created = store_.Update([&](store::WriteTx& tx) { return tx.Create(c); });
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(registry_.IsRemoved("w1"));
  EXPECT_FALSE(registry_.IsRemoved("w2"));

  const pki::RevocationCheck revoked = registry_.Revocation();
  pki::CertificateInfo peer;
  peer.subject = "w1";
  peer.role = api::CERTIFICATE_ROLE_WORKER;
  EXPECT_TRUE(revoked(peer));
  peer.role = api::CERTIFICATE_ROLE_OPERATOR;
  EXPECT_FALSE(revoked(peer));
  peer.subject = "w2";
  peer.role = api::CERTIFICATE_ROLE_WORKER;
  EXPECT_FALSE(revoked(peer));
}

}  // namespace
}  // namespace shoal::manager
