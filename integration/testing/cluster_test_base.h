// The fixture of the in-process cluster tests: a TestCluster (3 managers, fake workers and
// real agents as the derived fixture sets) started and ready, and what an operator's client
// does through the Control API (calls retried through leader changes, create, update, scale)
// and the check that a service runs its replicas.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "integration/testing/test_cluster.h"

namespace shoal::integration {

using manager::store::ReadTx;

class ClusterTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    TestCluster::Options o;
    o.base = std::filesystem::path(tmp ? tmp : "/tmp") /
             ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(o.base);
    o.workers = workers_;
    o.agents = agents_;
    o.executor = executor_;
    cluster_ = std::make_unique<TestCluster>(o);
    ASSERT_TRUE(cluster_->Start().ok());
    // Every worker registered and ready.
    ASSERT_TRUE(cluster_->WaitFor([&](const ReadTx& tx) {
      int ready = 0;
      for (const api::Node* n : tx.List<api::Node>()) {
        ready += n->status().state() == api::NodeStatus::NODE_STATE_READY;
      }
      return ready == workers_ + agents_;
    }));
  }

  // Retries through a leader change: the operator's CLI does the same.
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*, const Req&,
                                                               Resp*),
                    const Req& req, Resp* resp) {
    grpc::Status s;
    for (int attempt = 0; attempt < 50; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      s = (cluster_->Control().*method)(&ctx, req, resp);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
          s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return s;
      }
    }
    return s;
  }

  api::Service CreateService(const std::string& name, uint64_t replicas,
                             const std::function<void(api::ServiceSpec&)>& edit = nullptr) {
    api::CreateServiceRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->mutable_task()->mutable_container()->set_image("nginx:1");
    req.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    req.mutable_spec()->mutable_task()->mutable_restart()->mutable_delay()->set_seconds(0);
    if (edit) edit(*req.mutable_spec());
    api::CreateServiceResponse resp;
    const grpc::Status s = Call(&api::Control::Stub::CreateService, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service();
  }

  api::Service Get(const std::string& name) {
    api::GetServiceRequest req;
    req.set_service_id(name);
    api::GetServiceResponse resp;
    EXPECT_TRUE(Call(&api::Control::Stub::GetService, req, &resp).ok());
    return resp.service();
  }

  void Update(const std::string& name, const std::function<void(api::ServiceSpec&)>& edit) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const api::Service s = Get(name);
      api::UpdateServiceRequest req;
      req.set_service_id(s.meta().id());
      *req.mutable_service_version() = s.meta().version();
      *req.mutable_spec() = s.spec();
      edit(*req.mutable_spec());
      api::UpdateServiceResponse resp;
      const grpc::Status st = Call(&api::Control::Stub::UpdateService, req, &resp);
      if (st.error_code() == grpc::StatusCode::ABORTED) continue;  // changed meanwhile
      ASSERT_TRUE(st.ok()) << st.error_message();
      return;
    }
    FAIL() << "update kept conflicting";
  }

  void Scale(const std::string& name, uint64_t replicas) {
    Update(name, [&](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(replicas); });
  }

  // n slots, each with exactly one runnable task, running on a live worker; nothing else runs.
  static bool Running(const ReadTx& tx, const std::string& service_name, uint64_t n) {
    const api::Service* s = tx.GetByName<api::Service>(service_name);
    if (s == nullptr) return false;
    std::map<uint64_t, int> runnable, running;
    for (const api::Task* t : tx.TasksOfService(s->meta().id())) {
      if (t->desired_state() <= api::TASK_STATE_RUNNING) ++runnable[t->slot()];
      if (t->status().state() == api::TASK_STATE_RUNNING) ++running[t->slot()];
    }
    if (runnable.size() != n || running != runnable) return false;
    for (const auto& [slot, count] : runnable) {
      if (count != 1) return false;
    }
    return true;
  }

  // Fake workers and real agents the cluster starts with; the agents' executor (a sim one
  // when null). Set them in the derived fixture's constructor.
  int workers_ = 3;
  int agents_ = 0;
  worker::Executor* executor_ = nullptr;
  std::unique_ptr<TestCluster> cluster_;
};

}  // namespace shoal::integration
