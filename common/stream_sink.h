// Where a server stream's messages go, seen from the logic that produces them (the dispatcher's
// sessions and assignments, the log broker's subscriptions): the gRPC reactors implement it
// (grpc_stream.h), and tests implement it to see what would be sent, without gRPC.
#pragma once

#include "absl/status/status.h"

namespace shoal {

template <typename Msg>
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Queues `m` for the stream; may be called from any thread.
  virtual void Send(const Msg& m) = 0;
  // The stream is over: replaced by a newer one, or its producer stopped (`why` ends the call).
  virtual void End(const absl::Status& why) = 0;
};

}  // namespace shoal
