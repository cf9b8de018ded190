#include "raft/socket_cork.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "common/testing/manual_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::raft {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

// A listening socket on loopback and the connections made to it.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    socklen_t len = sizeof(addr_);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
  }
  ~Listener() { close(fd_); }
  int fd() const { return fd_; }

  // Connects a client; returns {client, accepted}.
  std::pair<int, int> Connect() {
    const int client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)), 0);
    const int accepted = accept(fd_, nullptr, nullptr);
    EXPECT_GE(accepted, 0);
    return {client, accepted};
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

// Bytes written to `fd` and not yet sent.
int Unsent(int fd) {
  int n = -1;
  EXPECT_EQ(ioctl(fd, SIOCOUTQNSD, &n), 0);
  return n;
}

void Write(int fd, size_t n) {
  const std::string data(n, 'x');
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(n));
}

// Reads exactly n bytes (within 10 s).
size_t Read(int fd, size_t n) {
  size_t got = 0;
  char buf[4096];
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) break;
    const ssize_t r = read(fd, buf, std::min(sizeof(buf), n - got));
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

TEST(SocketCorkTest, HoldsWhatAcceptedConnectionsSendUntilUncorked) {
  Listener listener;
  auto [client, accepted] = listener.Connect();
  // Uncorked, a small write leaves at once (what the check below relies on).
  Write(accepted, 100);
  EXPECT_EQ(Unsent(accepted), 0);
  ASSERT_EQ(Read(client, 100), 100u);

  SocketCork cork;
  cork.Cork();
  EXPECT_THAT(cork.corked(), Contains(accepted));
  // The client's own end and the listening socket are not accepted connections.
  EXPECT_THAT(cork.corked(), Not(Contains(client)));
  EXPECT_THAT(cork.corked(), Not(Contains(listener.fd())));
  Write(accepted, 100);
  Write(accepted, 100);
  EXPECT_EQ(Unsent(accepted), 200);
  // The client's end is written as ever.
  Write(client, 10);
  EXPECT_EQ(Unsent(client), 0);
  cork.Uncork();
  EXPECT_THAT(cork.corked(), IsEmpty());
  EXPECT_EQ(Unsent(accepted), 0);
  EXPECT_EQ(Read(client, 200), 200u);
  EXPECT_EQ(Read(accepted, 10), 10u);
  close(client);
  close(accepted);
}

TEST(SocketCorkTest, ReadsTheConnectionsAgainOnlyOnceTheListIsOld) {
  Listener listener;
  ManualClock clock;
  SocketCork::Options options;
  options.rescan_interval = absl::Milliseconds(500);
  options.clock = &clock;
  SocketCork cork(options);
  auto [client1, accepted1] = listener.Connect();
  cork.Cork();
  EXPECT_THAT(cork.corked(), Contains(accepted1));
  cork.Uncork();

  auto [client2, accepted2] = listener.Connect();
  clock.Advance(absl::Milliseconds(499));
  cork.Cork();
  EXPECT_THAT(cork.corked(), Contains(accepted1));
  EXPECT_THAT(cork.corked(), Not(Contains(accepted2)));  // not read yet
  Write(accepted2, 50);
  EXPECT_EQ(Unsent(accepted2), 0);
  cork.Uncork();

  clock.Advance(absl::Milliseconds(1));
  cork.Cork();
  EXPECT_THAT(cork.corked(), Contains(accepted1));
  EXPECT_THAT(cork.corked(), Contains(accepted2));
  cork.Uncork();

  // A connection closed since the last reading is dropped, not kept corked or retried.
  close(accepted1);
  cork.Cork();
  EXPECT_THAT(cork.corked(), Not(Contains(accepted1)));
  EXPECT_THAT(cork.corked(), Contains(accepted2));
  cork.Uncork();
  for (int fd : {client1, client2, accepted2}) close(fd);
}

TEST(SocketCorkTest, CorkingTwiceOrDestroyingUncorks) {
  Listener listener;
  auto [client, accepted] = listener.Connect();
  {
    SocketCork cork;
    cork.Cork();
    cork.Cork();  // nothing more
    EXPECT_EQ(std::count(cork.corked().begin(), cork.corked().end(), accepted), 1);
    Write(accepted, 100);
    EXPECT_EQ(Unsent(accepted), 100);
  }
  EXPECT_EQ(Unsent(accepted), 0);
  EXPECT_EQ(Read(client, 100), 100u);
  close(client);
  close(accepted);
}

TEST(SocketCorkTest, OnlyConnectionsToAPortStillListenedOnAreCorked) {
  int client = -1, accepted = -1;
  {
    Listener listener;
    std::tie(client, accepted) = listener.Connect();
    SocketCork cork;
    cork.Cork();
    EXPECT_THAT(cork.corked(), Contains(accepted));
  }
  // The listener is gone: its connections are no server's now, nor is any TCP socket of the
  // process corked for being one.
  SocketCork cork;
  cork.Cork();
  EXPECT_THAT(cork.corked(), Not(Contains(accepted)));
  EXPECT_THAT(cork.corked(), Not(Contains(client)));
  Write(accepted, 100);
  EXPECT_EQ(Unsent(accepted), 0);
  cork.Uncork();
  close(client);
  close(accepted);
}

}  // namespace
}  // namespace shoal::raft
