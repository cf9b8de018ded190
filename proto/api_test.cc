// Checks of the whole API in proto/: every message survives binary and JSON round trips with
// every field set, every element is documented, the stored objects share one shape, and task
// states are ordered.

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/logs.grpc.pb.h"
#include "proto/node_control.grpc.pb.h"
#include "proto/objects.pb.h"
#include "proto/raft.pb.h"
#include "proto/raft_service.grpc.pb.h"
#include "proto/store.pb.h"

namespace shoal::api {
namespace {

namespace pb = google::protobuf;

// Every .proto file of the API, as compiled into this binary.
const std::vector<std::string>& ApiFiles() {
  static const auto* files = new std::vector<std::string>{
      "proto/types.proto",   "proto/specs.proto",       "proto/objects.proto",
      "proto/store.proto",   "proto/control.proto",     "proto/dispatcher.proto",
      "proto/ca.proto",      "proto/logs.proto",        "proto/node_control.proto",
      "proto/raft.proto",    "proto/raft_service.proto",
  };
  return *files;
}

void CollectMessages(const pb::Descriptor* d, std::vector<const pb::Descriptor*>* out) {
  if (d->options().map_entry()) return;  // Covered through their map field.
  out->push_back(d);
  for (int i = 0; i < d->nested_type_count(); ++i) CollectMessages(d->nested_type(i), out);
}

std::vector<const pb::Descriptor*> AllMessages() {
  std::vector<const pb::Descriptor*> out;
  for (const std::string& name : ApiFiles()) {
    const pb::FileDescriptor* f = pb::DescriptorPool::generated_pool()->FindFileByName(name);
    EXPECT_NE(f, nullptr) << name << " is not linked into the test";
    if (f == nullptr) continue;
    for (int i = 0; i < f->message_type_count(); ++i) CollectMessages(f->message_type(i), &out);
  }
  return out;
}

// Fills every field of `m` with a distinctive non-default value. In each oneof, member
// `variant % member_count` is set, so callers cover every member by varying `variant`.
void Fill(pb::Message* m, int variant, int depth) {
  const pb::Descriptor* d = m->GetDescriptor();
  const pb::Reflection* r = m->GetReflection();
  if (d->full_name() == "google.protobuf.Timestamp" || d->full_name() == "google.protobuf.Duration") {
    // JSON only accepts valid times and durations.
    r->SetInt64(m, d->FindFieldByName("seconds"), 1700000000 + variant);
    r->SetInt32(m, d->FindFieldByName("nanos"), 500000);
    return;
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const pb::OneofDescriptor* oneof = f->real_containing_oneof();
    if (oneof != nullptr && oneof->field(variant % oneof->field_count()) != f) continue;
    const int n = f->number() + variant;
    const bool repeated = f->is_repeated();
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        repeated ? r->AddInt32(m, f, n) : r->SetInt32(m, f, n);
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        repeated ? r->AddInt64(m, f, int64_t{1} << 40 | n) : r->SetInt64(m, f, int64_t{1} << 40 | n);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        repeated ? r->AddUInt32(m, f, n) : r->SetUInt32(m, f, n);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        repeated ? r->AddUInt64(m, f, uint64_t{1} << 50 | n)
                 : r->SetUInt64(m, f, uint64_t{1} << 50 | n);
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        repeated ? r->AddDouble(m, f, 0.25 * n) : r->SetDouble(m, f, 0.25 * n);
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        repeated ? r->AddFloat(m, f, 0.5f * n) : r->SetFloat(m, f, 0.5f * n);
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        repeated ? r->AddBool(m, f, true) : r->SetBool(m, f, true);
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM: {
        const pb::EnumDescriptor* e = f->enum_type();
        const pb::EnumValueDescriptor* v = e->value(e->value_count() - 1);
        repeated ? r->AddEnum(m, f, v) : r->SetEnum(m, f, v);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        std::string s = f->name() + "-" + std::to_string(n);
        if (f->type() == pb::FieldDescriptor::TYPE_BYTES) s += std::string("\0\xff\x01", 3);
        repeated ? r->AddString(m, f, s) : r->SetString(m, f, s);
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
        // Recursive types (none today) would stop here instead of looping.
        if (depth > 8) break;
        pb::Message* child = repeated ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        Fill(child, variant, depth + 1);
        break;
      }
    }
  }
}

int MaxOneofSize(const pb::Descriptor* d) {
  int n = 1;
  for (int i = 0; i < d->oneof_decl_count(); ++i) {
    if (d->oneof_decl(i)->is_synthetic()) continue;  // proto3 `optional`
    n = std::max(n, d->oneof_decl(i)->field_count());
  }
  return n;
}

TEST(ApiTest, EveryMessageRoundTripsWithEveryFieldSet) {
  const std::vector<const pb::Descriptor*> messages = AllMessages();
  ASSERT_GT(messages.size(), 100u);
  for (const pb::Descriptor* d : messages) {
    const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(d);
    ASSERT_NE(prototype, nullptr) << d->full_name();
    std::set<std::string> seen_fields;
    for (int variant = 0; variant < MaxOneofSize(d); ++variant) {
      std::unique_ptr<pb::Message> original(prototype->New());
      Fill(original.get(), variant, 0);
      std::vector<const pb::FieldDescriptor*> set;
      original->GetReflection()->ListFields(*original, &set);
      for (const pb::FieldDescriptor* f : set) seen_fields.insert(f->name());

      std::string wire;
      ASSERT_TRUE(original->SerializeToString(&wire)) << d->full_name();
      std::unique_ptr<pb::Message> parsed(prototype->New());
      ASSERT_TRUE(parsed->ParseFromString(wire)) << d->full_name();
      EXPECT_TRUE(pb::util::MessageDifferencer::Equals(*original, *parsed))
          << d->full_name() << " binary round trip:\n"
          << original->DebugString() << "\n!=\n"
          << parsed->DebugString();

      std::string json;
      ASSERT_TRUE(pb::util::MessageToJsonString(*original, &json).ok()) << d->full_name();
      std::unique_ptr<pb::Message> from_json(prototype->New());
      ASSERT_TRUE(pb::util::JsonStringToMessage(json, from_json.get()).ok())
          << d->full_name() << ": " << json;
      EXPECT_TRUE(pb::util::MessageDifferencer::Equals(*original, *from_json))
          << d->full_name() << " JSON round trip: " << json;
    }
    // The fill is not vacuous: over the variants, every field was set and so round-tripped.
    EXPECT_EQ(seen_fields.size(), static_cast<size_t>(d->field_count())) << d->full_name();
  }
}

// Loads the descriptor set that protoc wrote with --include_source_info: unlike the compiled-in
// descriptors, it keeps the comments.
class DocumentedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in("proto/api_descriptor_set.pb", std::ios::binary);
    ASSERT_TRUE(in.good()) << "missing data file proto/api_descriptor_set.pb";
    std::stringstream buf;
    buf << in.rdbuf();
    ASSERT_TRUE(set_.ParseFromString(buf.str()));
    for (const pb::FileDescriptorProto& file : set_.file()) {
      ASSERT_NE(pool_.BuildFile(file), nullptr) << file.name();
    }
  }

  template <typename D>
  void ExpectDocumented(const D* d) {
    pb::SourceLocation loc;
    const bool has = d->GetSourceLocation(&loc) &&
                     (!loc.leading_comments.empty() || !loc.trailing_comments.empty());
    EXPECT_TRUE(has) << d->full_name() << " has no comment";
    ++checked_;
  }

  void CheckMessage(const pb::Descriptor* d) {
    if (d->options().map_entry()) return;
    ExpectDocumented(d);
    for (int i = 0; i < d->field_count(); ++i) ExpectDocumented(d->field(i));
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
      if (!d->oneof_decl(i)->is_synthetic()) ExpectDocumented(d->oneof_decl(i));
    }
    for (int i = 0; i < d->nested_type_count(); ++i) CheckMessage(d->nested_type(i));
    for (int i = 0; i < d->enum_type_count(); ++i) CheckEnum(d->enum_type(i));
  }

  void CheckEnum(const pb::EnumDescriptor* e) {
    ExpectDocumented(e);
    for (int i = 0; i < e->value_count(); ++i) ExpectDocumented(e->value(i));
  }

  pb::FileDescriptorSet set_;
  pb::DescriptorPool pool_;
  int checked_ = 0;
};

TEST_F(DocumentedTest, EveryMessageFieldEnumServiceAndMethodHasAComment) {
  for (const std::string& name : ApiFiles()) {
    const pb::FileDescriptor* f = pool_.FindFileByName(name);
    ASSERT_NE(f, nullptr) << name << " is missing from the descriptor set";
    for (int i = 0; i < f->message_type_count(); ++i) CheckMessage(f->message_type(i));
    for (int i = 0; i < f->enum_type_count(); ++i) CheckEnum(f->enum_type(i));
    for (int i = 0; i < f->service_count(); ++i) {
      ExpectDocumented(f->service(i));
      for (int j = 0; j < f->service(i)->method_count(); ++j) {
        ExpectDocumented(f->service(i)->method(j));
      }
    }
  }
  EXPECT_GT(checked_, 500);
}

// Every kind of stored object appears in StoreObject, and every one has meta (id, version,
// times) as field 1 and, except for none, a spec as field 2.
TEST(ApiTest, StoredObjectsShareMetaAndSpec) {
  const pb::OneofDescriptor* oneof = StoreObject::descriptor()->FindOneofByName("object");
  ASSERT_NE(oneof, nullptr);
  std::set<std::string> kinds;
  for (int i = 0; i < oneof->field_count(); ++i) {
    const pb::Descriptor* object = oneof->field(i)->message_type();
    kinds.insert(object->name());
    const pb::FieldDescriptor* meta = object->FindFieldByNumber(1);
    ASSERT_NE(meta, nullptr) << object->name();
    EXPECT_EQ(meta->name(), "meta") << object->name();
    EXPECT_EQ(meta->message_type(), Meta::descriptor()) << object->name();
    const pb::FieldDescriptor* spec = object->FindFieldByNumber(2);
    ASSERT_NE(spec, nullptr) << object->name();
    EXPECT_EQ(spec->name(), "spec") << object->name();
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"Node", "Service", "Task", "Secret", "Config", "Network",
                                          "Cluster"}));
  // The snapshot holds every kind too, besides its format and index.
  EXPECT_EQ(StoreSnapshot::descriptor()->field_count(), 2 + oneof->field_count());
}

// Task states are declared in life-cycle order with increasing values, so "moves only forward"
// is a comparison of values, and the terminal states follow RUNNING.
TEST(ApiTest, TaskStatesAreOrderedByLifeCycle) {
  const pb::EnumDescriptor* e = TaskState_descriptor();
  for (int i = 1; i < e->value_count(); ++i) {
    EXPECT_LT(e->value(i - 1)->number(), e->value(i)->number()) << e->value(i)->name();
  }
  const std::vector<TaskState> order = {
      TASK_STATE_NEW,      TASK_STATE_PENDING,  TASK_STATE_ASSIGNED, TASK_STATE_ACCEPTED,
      TASK_STATE_PREPARING, TASK_STATE_READY,   TASK_STATE_STARTING, TASK_STATE_RUNNING,
      TASK_STATE_COMPLETE, TASK_STATE_SHUTDOWN, TASK_STATE_FAILED,   TASK_STATE_REJECTED,
      TASK_STATE_REMOVE,   TASK_STATE_ORPHANED};
  ASSERT_EQ(order.size(), static_cast<size_t>(e->value_count()));
  for (size_t i = 1; i < order.size(); ++i) EXPECT_LT(order[i - 1], order[i]);
}

// Fields where zero is meaningful but not the default keep presence, so "unset" can mean the
// documented default (e.g. update parallelism defaults to 1 while 0 means all at once).
TEST(ApiTest, DefaultsAreDistinguishableFromZero) {
  UpdateConfig update;
  EXPECT_FALSE(update.has_parallelism());
  update.set_parallelism(0);
  EXPECT_TRUE(update.has_parallelism());
  EXPECT_FALSE(update.has_monitor());

  ClusterSpec::Orchestration orchestration;
  EXPECT_FALSE(orchestration.has_task_history_retention_limit());

  ServiceSpec spec;
  EXPECT_EQ(spec.mode_case(), ServiceSpec::MODE_NOT_SET);
  spec.mutable_replicated()->set_replicas(0);
  EXPECT_EQ(spec.mode_case(), ServiceSpec::kReplicated);

  // The default enum values are the Docker defaults.
  EXPECT_EQ(RestartPolicy().condition(), RestartPolicy::RESTART_CONDITION_ANY);
  EXPECT_EQ(UpdateConfig().failure_action(), UpdateConfig::FAILURE_ACTION_PAUSE);
  EXPECT_EQ(UpdateConfig().order(), UpdateConfig::ORDER_STOP_FIRST);
  EXPECT_EQ(PortConfig().publish_mode(), PortConfig::PUBLISH_MODE_INGRESS);
  EXPECT_EQ(EndpointSpec().mode(), EndpointSpec::RESOLUTION_MODE_VIP);
  EXPECT_EQ(NodeSpec().availability(), NodeSpec::AVAILABILITY_ACTIVE);
}

// Raft entries carry store transactions opaquely: one round trip through both layers.
TEST(ApiTest, StoreTransactionTravelsInARaftEntry) {
  StoreTransaction tx;
  tx.set_id(42);
  StoreAction* action = tx.add_actions();
  action->set_kind(StoreAction::KIND_CREATE);
  Service* service = action->mutable_target()->mutable_service();
  service->mutable_meta()->set_id("3ax9y8w2r5t6u7i8o9p0q1w2e");
  service->mutable_spec()->mutable_annotations()->set_name("web");
  service->mutable_spec()->mutable_replicated()->set_replicas(5);
  service->mutable_spec()->mutable_task()->mutable_container()->set_image("nginx:1.25");

  raftpb::Entry entry;
  entry.set_term(3);
  entry.set_index(17);
  ASSERT_TRUE(tx.SerializeToString(entry.mutable_data()));
  raftpb::Entry decoded_entry;
  ASSERT_TRUE(decoded_entry.ParseFromString(entry.SerializeAsString()));
  StoreTransaction decoded;
  ASSERT_TRUE(decoded.ParseFromString(decoded_entry.data()));
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(tx, decoded));
  EXPECT_EQ(decoded.actions(0).target().service().spec().replicated().replicas(), 5u);
}

// The services exist with the methods the architecture names.
TEST(ApiTest, ServicesDeclareTheirMethods) {
  auto methods = [](const std::string& service) {
    const pb::ServiceDescriptor* s = pb::DescriptorPool::generated_pool()->FindServiceByName(service);
    std::set<std::string> names;
    if (s == nullptr) return names;
    for (int i = 0; i < s->method_count(); ++i) names.insert(s->method(i)->name());
    return names;
  };
  const std::set<std::string> control = methods("shoal.api.Control");
  for (const char* kind : {"Service", "Network", "Secret", "Config"}) {
    for (const char* verb : {"Create", "Get", "List", "Remove"}) {
      const std::string name = std::string(verb) + kind + (std::string(verb) == "List" ? "s" : "");
      EXPECT_TRUE(control.count(name)) << name;
    }
  }
  for (const char* name : {"GetNode", "ListNodes", "UpdateNode", "RemoveNode", "GetTask",
                           "ListTasks", "RemoveTask", "GetCluster", "UpdateCluster", "Watch"}) {
    EXPECT_TRUE(control.count(name)) << name;
  }
  EXPECT_EQ(methods("shoal.api.Dispatcher"),
            (std::set<std::string>{"Session", "Heartbeat", "UpdateTaskStatus", "Assignments"}));
  EXPECT_EQ(methods("shoal.api.NodeCA"),
            (std::set<std::string>{"GetRootCACertificate", "IssueNodeCertificate",
                                   "NodeCertificateStatus"}));
  EXPECT_EQ(methods("shoal.api.Logs"),
            (std::set<std::string>{"SubscribeLogs", "ListenSubscriptions", "PublishLogs"}));
  EXPECT_EQ(methods("shoal.api.NodeControl"),
            (std::set<std::string>{"Init", "Join", "Leave", "Info", "Unlock"}));
  EXPECT_EQ(methods("shoal.raftpb.Raft"),
            (std::set<std::string>{"StreamMessages", "InstallSnapshot", "Join", "Leave",
                                   "ResolveAddress"}));
}

}  // namespace
}  // namespace shoal::api
