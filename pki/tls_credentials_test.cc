// The TLS versions a Shoal server accepts, probed with a plain OpenSSL client: TLS 1.3 when the
// client has it, TLS 1.2 still accepted, anything older refused. Also the TLS directory files.
#include "pki/tls_credentials.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/testing/test_pki.h"
#include "pki/tls_files.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;

// Handshakes with 127.0.0.1:`port` offering TLS versions [min, max]; returns the negotiated
// version, or 0 if the handshake failed.
int Handshake(int port, int min_version, int max_version) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // let the client offer old versions at all
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int version = 0;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) version = SSL_version(ssl);
    SSL_free(ssl);
  }
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return version;
}

class TlsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::TestPki::Create("c1", clock_);
    ASSERT_TRUE(pki.ok());
    pki_ = *std::move(pki);
    auto dir = pki_->IssueDir("m1", api::CERTIFICATE_ROLE_MANAGER);
    ASSERT_TRUE(dir.ok());
    auto check = AccessCheck::Create({"c1", pki_->ca().cert_pem()}, clock_, nullptr);
    ASSERT_TRUE(check.ok());
    auto server = testing::StubServer::Start(*dir, std::move(*check));
    ASSERT_TRUE(server.ok());
    server_ = *std::move(server);
    port_ = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  }

  ManualClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<testing::TestPki> pki_;
  std::unique_ptr<testing::StubServer> server_;
  int port_ = 0;
};

TEST_F(TlsCredentialsTest, NegotiatesTls13WhenTheClientOffersIt) {
  EXPECT_EQ(Handshake(port_, TLS1_2_VERSION, TLS1_3_VERSION), TLS1_3_VERSION);
}

TEST_F(TlsCredentialsTest, AcceptsTls12) {
  EXPECT_EQ(Handshake(port_, TLS1_2_VERSION, TLS1_2_VERSION), TLS1_2_VERSION);
}

TEST_F(TlsCredentialsTest, RefusesTls11AndOlder) {
  EXPECT_EQ(Handshake(port_, TLS1_VERSION, TLS1_1_VERSION), 0);
}

TEST(TlsFilesTest, WritesKeyPrivatelyAndReadsTheBundleBack) {
  ManualClock clock;
  auto pki = testing::TestPki::Create("c1", clock);
  ASSERT_TRUE(pki.ok());
  auto bundle = (*pki)->Issue("n1", api::CERTIFICATE_ROLE_WORKER);
  ASSERT_TRUE(bundle.ok());
  std::string dir = testing::NewTempDir("tls");
  ASSERT_TRUE(WriteTlsDir(dir, *bundle).ok());
  struct stat st;
  ASSERT_EQ(stat((dir + "/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto back = ReadTlsDir(dir);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->key_pem, bundle->key_pem);
  EXPECT_EQ(back->cert_pem, bundle->cert_pem);
  EXPECT_EQ(back->ca_pem, bundle->ca_pem);
  EXPECT_TRUE(CheckTlsBundle(*back, clock.Now()).ok());
  // Rewriting replaces the files (atomically, by rename).
  auto other = (*pki)->Issue("n1", api::CERTIFICATE_ROLE_MANAGER);
  ASSERT_TRUE(WriteTlsDir(dir, *other).ok());
  EXPECT_EQ(ReadTlsDir(dir)->cert_pem, other->cert_pem);
}

TEST(TlsFilesTest, ExplainsMissingFilesAndMismatchedKeys) {
  ManualClock clock;
  auto status = ReadTlsDir(testing::NewTempDir("nothing")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("key.pem"));
  auto pki = testing::TestPki::Create("c1", clock);
  auto a = (*pki)->Issue("a", api::CERTIFICATE_ROLE_WORKER);
  auto b = (*pki)->Issue("b", api::CERTIFICATE_ROLE_WORKER);
  TlsBundle mixed{a->key_pem, b->cert_pem, a->ca_pem};
  EXPECT_THAT(CheckTlsBundle(mixed, clock.Now()).message(), HasSubstr("does not belong"));
}

}  // namespace
}  // namespace shoal::pki
