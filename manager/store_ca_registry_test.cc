#include "manager/store_ca_registry.h"

#include "gtest/gtest.h"
#include "manager/store/testing/fake_raft.h"

namespace shoal::manager {
namespace {

// `node rm` lists the node in the cluster object; from then on the CA refuses to renew its
// certificate and every call it makes is refused. Operators are never nodes.
TEST(StoreCaRegistryTest, ANodeListedAsRemovedIsRevoked) {
  store::testing::FakeRaft raft;
  store::Store store(&raft);
  raft.Join(&store);
  StoreCaRegistry registry(&store);
  EXPECT_FALSE(registry.IsRemoved("w1"));  // no cluster object yet

  api::Cluster c;
  c.mutable_meta()->set_id("cluster1");
  c.mutable_spec()->mutable_annotations()->set_name("default");
  (*c.mutable_removed_nodes())["w1"].set_seconds(1'900'000'000);
  auto created = store.Update([&](store::WriteTx& tx) { return tx.Create(c); });
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(registry.IsRemoved("w1"));
  EXPECT_FALSE(registry.IsRemoved("w2"));

  const pki::RevocationCheck revoked = registry.Revocation();
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
