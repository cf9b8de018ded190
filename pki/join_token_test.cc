#include "pki/join_token.h"

#include <string>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/base36.h"
#include "pki/root_ca.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kDigest(32, '\x5a');

std::string ValidToken() { return GenerateJoinToken(kDigest, SeededRandomBytes(1)).ToString(); }

absl::Status ParseError(absl::string_view text) { return ParseJoinToken(text).status(); }

TEST(JoinTokenTest, GeneratedTokenHasDockerShapeAndParsesBack) {
  JoinToken token = GenerateJoinToken(kDigest, SeededRandomBytes(7));
  std::string text = token.ToString();
  EXPECT_EQ(text.size(), 85u);
  EXPECT_EQ(text.substr(0, 9), "SWMTKN-1-");
  EXPECT_EQ(text.substr(9, 50), EncodeBase36(kDigest));
  EXPECT_EQ(text[59], '-');
  auto parsed = ParseJoinToken(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->ca_digest, kDigest);
  EXPECT_EQ(parsed->secret, token.secret);
  EXPECT_EQ(parsed->ToString(), text);
}

TEST(JoinTokenTest, SeededGenerationIsDeterministicAndSeedsDiffer) {
  EXPECT_EQ(GenerateJoinToken(kDigest, SeededRandomBytes(3)).secret,
            GenerateJoinToken(kDigest, SeededRandomBytes(3)).secret);
  EXPECT_NE(GenerateJoinToken(kDigest, SeededRandomBytes(3)).secret,
            GenerateJoinToken(kDigest, SeededRandomBytes(4)).secret);
}

TEST(JoinTokenTest, RejectsEmptyAndOverlongTokens) {
  EXPECT_THAT(ParseError("").message(), HasSubstr("empty"));
  EXPECT_THAT(ParseError(std::string(300, 'a')).message(), HasSubstr("300 characters long"));
}

TEST(JoinTokenTest, RejectsWrongPrefixNamingIt) {
  std::string t = ValidToken();
  absl::Status s = ParseError("SWMTKX" + t.substr(6));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("must start with \"SWMTKN-\", not \"SWMTKX\""));
  EXPECT_THAT(ParseError("swmtkn" + t.substr(6)).message(), HasSubstr("must start with"));
}

TEST(JoinTokenTest, RejectsOtherVersions) {
  std::string t = ValidToken();
  t[7] = '2';
  EXPECT_THAT(ParseError(t).message(), HasSubstr("unsupported join token version \"2\""));
  EXPECT_THAT(ParseError("SWMTKN").message(), HasSubstr("unsupported join token version"));
}

TEST(JoinTokenTest, RejectsWrongNumberOfParts) {
  std::string t = ValidToken();
  EXPECT_THAT(ParseError(t + "-extra").message(), HasSubstr("has 5 parts"));
  EXPECT_THAT(ParseError(t.substr(0, 59)).message(), HasSubstr("has 3 parts"));
}

TEST(JoinTokenTest, RejectsDigestOfWrongLengthOrAlphabet) {
  std::string t = ValidToken();
  EXPECT_THAT(ParseError(t.substr(0, 10) + t.substr(11)).message(),
              HasSubstr("CA digest in the join token has 49 characters, expected 50"));
  std::string upper = t;
  upper[12] = 'A';
  EXPECT_THAT(ParseError(upper).message(), HasSubstr("'A' at position 3"));
  std::string too_big = t;
  too_big.replace(9, 50, std::string(50, 'z'));
  EXPECT_THAT(ParseError(too_big).message(), HasSubstr("does not fit in 256 bits"));
}

TEST(JoinTokenTest, RejectsBadSecretWithoutQuotingIt) {
  std::string t = ValidToken();
  EXPECT_THAT(ParseError(t.substr(0, t.size() - 1)).message(),
              HasSubstr("secret in the join token has 24 characters, expected 25"));
  std::string bad = t;
  bad[62] = 'Q';
  absl::Status s = ParseError(bad);
  EXPECT_THAT(s.message(), HasSubstr("invalid character at position 2"));
  EXPECT_THAT(s.message(), Not(HasSubstr("Q")));
  std::string too_big = t;
  too_big.replace(60, 25, std::string(25, 'z'));
  EXPECT_THAT(ParseError(too_big).message(), HasSubstr("does not fit in 128 bits"));
}

TEST(JoinTokenTest, EqualityIsExact) {
  std::string a = ValidToken();
  std::string b = a;
  EXPECT_TRUE(JoinTokensEqual(a, b));
  b.back() = b.back() == '0' ? '1' : '0';
  EXPECT_FALSE(JoinTokensEqual(a, b));
  EXPECT_FALSE(JoinTokensEqual(a, a.substr(0, 84)));
  EXPECT_FALSE(JoinTokensEqual(a + "0", a));
  EXPECT_FALSE(JoinTokensEqual("", ""));  // an unset expected token never matches
  EXPECT_FALSE(JoinTokensEqual(std::string(300, 'a'), std::string(300, 'a')));
}

TEST(JoinTokenTest, CaDigestPinsTheRootCertificate) {
  ManualClock clock;
  auto ca = RootCa::Create(clock);
  auto other = RootCa::Create(clock);
  ASSERT_TRUE(ca.ok() && other.ok());
  auto digest = CaDigest((*ca)->cert_pem());
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->size(), 32u);
  EXPECT_EQ(*digest, (*ca)->digest());
  JoinToken token = GenerateJoinToken(*digest, SeededRandomBytes(1));
  EXPECT_TRUE(CheckCaMatchesToken(token, (*ca)->cert_pem()).ok());
  absl::Status s = CheckCaMatchesToken(token, (*other)->cert_pem());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("does not match the CA digest in the join token"));
  EXPECT_EQ(CheckCaMatchesToken(token, "garbage").code(), absl::StatusCode::kInvalidArgument);
}

TEST(JoinTokenTest, DigestHexStringHasSha256Prefix) {
  EXPECT_EQ(DigestToHexString(std::string("\x01\xab", 2)), "sha256:01ab");
}

}  // namespace
}  // namespace shoal::pki
