#include "scheduler/constraint.h"

#include "gtest/gtest.h"

namespace shoal::scheduler {
namespace {

api::Node MakeNode() {
  api::Node n;
  n.mutable_meta()->set_id("n1abc");
  n.mutable_description()->set_hostname("web-01");
  n.set_role(api::NODE_ROLE_WORKER);
  n.mutable_status()->set_addr("10.0.3.7");
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("x86_64");
  (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "eu-1";
  (*n.mutable_description()->mutable_engine_labels())["storage"] = "ssd";
  return n;
}

bool Check(absl::string_view text, const api::Node& node) {
  absl::StatusOr<Constraint> c = ParseConstraint(text);
  EXPECT_TRUE(c.ok()) << text << ": " << c.status();
  return c.ok() && Matches(*c, node);
}

// Each constraint against the node of MakeNode, and whether it holds there.
TEST(ConstraintTest, MatchesAsDockerSwarmDoes) {
  const api::Node n = MakeNode();
  struct Case {
    const char* text;
    bool holds;
  };
  for (const Case& c : {
           // Each key, with both operators.
           Case{"node.id==n1abc", true},
           Case{"node.id!=n1abc", false},
           Case{"node.hostname == web-01", true},  // spaces around the operator
           Case{"node.hostname!=web-02", true},
           Case{"node.role==worker", true},
           Case{"node.role==manager", false},
           Case{"node.platform.os==linux", true},
           Case{"node.platform.arch==x86_64", true},
           Case{"node.labels.zone==eu-1", true},
           Case{"engine.labels.storage==ssd", true},
           Case{"engine.labels.storage==hdd", false},
           // Keys and values are case-insensitive, a label's name is not.
           Case{"Node.Hostname==WEB-01", true},
           Case{"NODE.ROLE==Worker", true},
           Case{"node.labels.zone==EU-1", true},
           Case{"node.labels.Zone==eu-1", false},
           // A label the node lacks satisfies != only.
           Case{"node.labels.rack==r1", false},
           Case{"node.labels.rack!=r1", true},
       }) {
    EXPECT_EQ(Check(c.text, n), c.holds) << c.text;
  }
}

TEST(ConstraintTest, NodeIpTakesAnAddressOrANetwork) {
  const api::Node n = MakeNode();
  EXPECT_TRUE(Check("node.ip==10.0.3.7", n));
  EXPECT_FALSE(Check("node.ip==10.0.3.8", n));
  EXPECT_TRUE(Check("node.ip==10.0.0.0/16", n));
  EXPECT_FALSE(Check("node.ip==10.1.0.0/16", n));
  EXPECT_TRUE(Check("node.ip!=192.168.0.0/16", n));
  EXPECT_TRUE(Check("node.ip==0.0.0.0/0", n));
  api::Node v6 = n;
  v6.mutable_status()->set_addr("fd00::12");
  EXPECT_TRUE(Check("node.ip==fd00::/64", v6));
  EXPECT_FALSE(Check("node.ip==10.0.0.0/8", v6));
}

TEST(ConstraintTest, MalformedConstraintsAreRefusedWithWhatIsWrong) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {
           Case{"node.role=manager", "expected <key>==<value> or <key>!=<value>"},
           Case{"node.role==", "the value is empty"},
           Case{"node.role==boss", "node.role is manager or worker"},
           Case{"node.ip==10.0.0.0/33", "node.ip takes an IP address or a CIDR network"},
           Case{"node.ip==web-01", "node.ip takes an IP address or a CIDR network"},
           Case{"node.labels.==x", "no label name after node.labels."},
           Case{"node.colour==red", "unknown key \"node.colour\""},
           Case{"node.id==a==b", "more than one operator"},
       }) {
    absl::StatusOr<Constraint> r = ParseConstraint(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << c.text << " -> " << r.status().message();
    EXPECT_NE(r.status().message().find(c.text), std::string::npos) << "names the constraint";
  }
}

TEST(ConstraintTest, AllMustMatchAndAnErrorNamesItsPosition) {
  const api::Node n = MakeNode();
  google::protobuf::RepeatedPtrField<std::string> texts;
  *texts.Add() = "node.role==worker";
  *texts.Add() = "node.labels.zone==eu-1";
  absl::StatusOr<std::vector<Constraint>> cs = ParseConstraints(texts);
  ASSERT_TRUE(cs.ok()) << cs.status();
  EXPECT_TRUE(MatchesAll(*cs, n));
  *texts.Add() = "node.hostname!=web-01";
  cs = ParseConstraints(texts);
  ASSERT_TRUE(cs.ok());
  EXPECT_FALSE(MatchesAll(*cs, n));
  EXPECT_TRUE(MatchesAll({}, n));
  *texts.Add() = "nonsense";
  cs = ParseConstraints(texts);
  ASSERT_FALSE(cs.ok());
  EXPECT_NE(cs.status().message().find("placement.constraints[3]"), std::string::npos)
      << cs.status();
}

}  // namespace
}  // namespace shoal::scheduler
