#include "cli/parse.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

using ::testing::HasSubstr;

TEST(ParseTest, DurationsAreGoStyle) {
  EXPECT_EQ(*ParseDuration("--delay", "10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("--delay", "1m30s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("--delay", "300ms"), absl::Milliseconds(300));
  EXPECT_EQ(*ParseDuration("--delay", "1.5h"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("--delay", "0"), absl::ZeroDuration());
}

TEST(ParseTest, BadDurationsNameTheFlagAndValue) {
  for (const char* bad : {"10", "ten", "", "5x", "-3s", "inf"}) {
    auto d = ParseDuration("--restart-delay", bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(),
                HasSubstr(std::string("invalid --restart-delay \"") + bad + "\""));
  }
}

TEST(ParseTest, DurationsRoundTripThroughProto) {
  const auto p = DurationToProto(absl::Milliseconds(1500));
  EXPECT_EQ(p.seconds(), 1);
  EXPECT_EQ(p.nanos(), 500000000);
  EXPECT_EQ(DurationFromProto(p), absl::Milliseconds(1500));
}

TEST(ParseTest, SizesHaveBinaryUnits) {
  EXPECT_EQ(*ParseBytes("--limit-memory", "1024"), 1024);
  EXPECT_EQ(*ParseBytes("--limit-memory", "512M"), 512LL << 20);
  EXPECT_EQ(*ParseBytes("--limit-memory", "512m"), 512LL << 20);
  EXPECT_EQ(*ParseBytes("--limit-memory", "512MB"), 512LL << 20);
  EXPECT_EQ(*ParseBytes("--limit-memory", "1.5g"), 3LL << 29);
  EXPECT_EQ(*ParseBytes("--limit-memory", "2k"), 2048);
  EXPECT_EQ(*ParseBytes("--limit-memory", "100b"), 100);
  EXPECT_EQ(*ParseBytes("--limit-memory", "1t"), 1LL << 40);
}

TEST(ParseTest, BadSizesNameTheInput) {
  for (const char* bad : {"12x", "", "M", "-5M", "1.2.3g", "abc", "5 M"}) {
    auto b = ParseBytes("--limit-memory", bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_THAT(b.status().message(),
                HasSubstr(std::string("invalid --limit-memory \"") + bad + "\""));
  }
}

TEST(ParseTest, CpusAreExactNanoCpus) {
  EXPECT_EQ(*ParseNanoCpus("--limit-cpu", "0.5"), 500000000);
  EXPECT_EQ(*ParseNanoCpus("--limit-cpu", "2"), 2000000000);
  EXPECT_EQ(*ParseNanoCpus("--limit-cpu", "1.25"), 1250000000);
  EXPECT_EQ(*ParseNanoCpus("--limit-cpu", ".1"), 100000000);
  EXPECT_EQ(*ParseNanoCpus("--limit-cpu", "0.000000001"), 1);
  for (const char* bad : {"0", "-1", "abc", "1.0000000001", "", ".", "1e3"}) {
    auto c = ParseNanoCpus("--reserve-cpu", bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(c.status().message(),
                HasSubstr(std::string("invalid --reserve-cpu \"") + bad + "\""));
  }
}

TEST(ParseTest, UintsRefuseSignsAndFractions) {
  EXPECT_EQ(*ParseUint("--replicas", "5"), 5u);
  for (const char* bad : {"-1", "1.5", "five", "", "+3"}) {
    EXPECT_FALSE(ParseUint("--replicas", bad).ok()) << bad;
  }
  EXPECT_EQ(ParseUint("--replicas", "five").status().message(),
            "invalid --replicas \"five\": expected a non-negative integer");
}

TEST(ParseTest, PublishShortAndLongForms) {
  auto p = ParsePublish("8080:80");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->published_port(), 8080u);
  EXPECT_EQ(p->target_port(), 80u);
  EXPECT_EQ(p->protocol(), api::PortConfig::PROTOCOL_TCP);
  EXPECT_EQ(p->publish_mode(), api::PortConfig::PUBLISH_MODE_INGRESS);

  p = ParsePublish("53:53/udp");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->protocol(), api::PortConfig::PROTOCOL_UDP);

  p = ParsePublish("80");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->published_port(), 0u) << "auto-assigned";
  EXPECT_EQ(p->target_port(), 80u);

  p = ParsePublish("published=8080,target=80,protocol=sctp,mode=host");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->published_port(), 8080u);
  EXPECT_EQ(p->target_port(), 80u);
  EXPECT_EQ(p->protocol(), api::PortConfig::PROTOCOL_SCTP);
  EXPECT_EQ(p->publish_mode(), api::PortConfig::PUBLISH_MODE_HOST);
}

TEST(ParseTest, BadPublishSaysWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"70000:80", "is not a number in 1-65535"},
      {"8080:80/icmp", "protocol \"icmp\""},
      {"1.2.3.4:8080:80", "host IP is not supported"},
      {"8000-8001:80-81", "ranges are not supported"},
      {"published=8080", "target= is required"},
      {"target=80,mode=bridge", "mode \"bridge\""},
      {"target=80,color=red", "unknown field \"color\""},
  };
  for (const auto& [value, why] : cases) {
    auto p = ParsePublish(value);
    ASSERT_FALSE(p.ok()) << value;
    EXPECT_THAT(p.status().message(),
                HasSubstr(std::string("invalid --publish \"") + value + "\""));
    EXPECT_THAT(p.status().message(), HasSubstr(why));
  }
}

TEST(ParseTest, EnvEntries) {
  EXPECT_EQ(*ParseEnv("A=1"), "A=1");
  EXPECT_EQ(*ParseEnv("A="), "A=");
  EXPECT_EQ(*ParseEnv("A=b=c"), "A=b=c");
  setenv("SWARMCTL_PARSE_TEST", "from-env", 1);
  EXPECT_EQ(*ParseEnv("SWARMCTL_PARSE_TEST"), "SWARMCTL_PARSE_TEST=from-env");
  unsetenv("SWARMCTL_PARSE_TEST_UNSET");
  EXPECT_EQ(*ParseEnv("SWARMCTL_PARSE_TEST_UNSET"), "SWARMCTL_PARSE_TEST_UNSET");
  EXPECT_THAT(ParseEnv("=1").status().message(), HasSubstr("invalid --env \"=1\""));
  EXPECT_THAT(ParseEnv("A B=1").status().message(), HasSubstr("whitespace"));
  EXPECT_EQ(EnvKey("A=1"), "A");
  EXPECT_EQ(EnvKey("A"), "A");
}

TEST(ParseTest, LabelsAndPreferences) {
  EXPECT_EQ(*ParseKeyValue("--label", "a=b"), std::make_pair(std::string("a"), std::string("b")));
  EXPECT_EQ(*ParseKeyValue("--label", "a"), std::make_pair(std::string("a"), std::string()));
  EXPECT_FALSE(ParseKeyValue("--label", "=b").ok());
  auto pref = ParsePlacementPref("spread=node.labels.zone");
  ASSERT_TRUE(pref.ok());
  EXPECT_EQ(pref->spread().spread_descriptor(), "node.labels.zone");
  EXPECT_THAT(ParsePlacementPref("pack=x").status().message(),
              HasSubstr("invalid --placement-pref \"pack=x\""));
}

TEST(ParseTest, SecretConfigAndNetworkReferences) {
  auto s = ParseSecretRef("db");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->secret_name(), "db");
  EXPECT_EQ(s->target().name(), "db");
  s = ParseSecretRef("source=db,target=password,uid=1,gid=2,mode=0400");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->target().name(), "password");
  EXPECT_EQ(s->target().uid(), "1");
  EXPECT_EQ(s->target().mode(), 0400u);
  EXPECT_THAT(ParseSecretRef("source=db,mode=999").status().message(), HasSubstr("octal"));
  EXPECT_THAT(ParseSecretRef("target=x").status().message(), HasSubstr("source= is required"));
  auto c = ParseConfigRef("nginx.conf");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->target().name(), "/nginx.conf");
  auto n = ParseNetwork("name=backend,alias=db,alias=pg");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->target(), "backend");
  EXPECT_EQ(n->aliases_size(), 2);
}

TEST(ParseTest, EnumFlags) {
  EXPECT_EQ(*ParseRestartCondition("on-failure"), api::RestartPolicy::RESTART_CONDITION_ON_FAILURE);
  EXPECT_EQ(*ParseAvailability("Drain"), api::NodeSpec::AVAILABILITY_DRAIN);
  EXPECT_EQ(*ParseRole("manager"), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(*ParseServiceMode("replicated-job"), ServiceMode::kReplicatedJob);
  EXPECT_EQ(*ParseUpdateOrder("--update-order", "start-first"),
            api::UpdateConfig::ORDER_START_FIRST);
  EXPECT_EQ(*ParseFailureAction("--update-failure-action", "rollback"),
            api::UpdateConfig::FAILURE_ACTION_ROLLBACK);
  EXPECT_EQ(ParseAvailability("away").status().message(),
            "invalid --availability \"away\": expected active, pause or drain");
  EXPECT_FALSE(ParseServiceMode("daemon").ok());
  EXPECT_FALSE(ParseRatio("--update-max-failure-ratio", "1.5").ok());
  EXPECT_FLOAT_EQ(*ParseRatio("--update-max-failure-ratio", "0.25"), 0.25f);
}

TEST(ParseTest, SinceTakesTimesTimestampsAndDurations) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  const absl::TimeZone utc = absl::UTCTimeZone();
  EXPECT_EQ(*ParseSince("2013-01-02T13:23:37Z", now, utc), absl::FromUnixSeconds(1357133017));
  EXPECT_EQ(*ParseSince("2013-01-02T13:23:37.5+01:00", now, utc),
            absl::FromUnixSeconds(1357133017 - 3600) + absl::Milliseconds(500));
  EXPECT_EQ(*ParseSince("2013-01-02T13:23:37", now, utc), absl::FromUnixSeconds(1357133017));
  EXPECT_EQ(*ParseSince("2013-01-02", now, utc), absl::FromUnixSeconds(1357084800));
  EXPECT_EQ(*ParseSince("1700000000", now, utc), absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(*ParseSince("1700000000.25", now, utc),
            absl::FromUnixSeconds(1700000000) + absl::Milliseconds(250));
  EXPECT_EQ(*ParseSince("42m", now, utc), now - absl::Minutes(42));
  EXPECT_EQ(*ParseSince("1h30m", now, utc), now - absl::Minutes(90));
  for (const char* bad : {"", "yesterday", "-5m", "12:00"}) {
    auto s = ParseSince(bad, now, utc);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(s.status().message(), "invalid --since")) << s.status();
  }
}

TEST(ParseTest, TailIsAllOrANumber) {
  EXPECT_EQ(*ParseTail("all"), -1);
  EXPECT_EQ(*ParseTail("0"), 0);
  EXPECT_EQ(*ParseTail("20"), 20);
  EXPECT_EQ(ParseTail("-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTail("ten").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::cli
