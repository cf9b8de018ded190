#include "manager/leader_components.h"

namespace shoal::manager {

LeaderComponents::LeaderComponents(Options options) : options_(options) {
  thread_ = std::thread([this] { Run(); });
}

LeaderComponents::~LeaderComponents() {
  {
    absl::MutexLock lock(&mu_);
    quitting_ = true;
  }
  thread_.join();
  StopAll();
}

void LeaderComponents::OnLeadership(bool leading, uint64_t term) {
  absl::MutexLock lock(&mu_);
  queue_.emplace_back(leading, term);
}

uint64_t LeaderComponents::running_term() const {
  absl::MutexLock lock(&mu_);
  return term_;
}

void LeaderComponents::Drain() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.empty() && !busy_; };
  mu_.Await(absl::Condition(&idle));
}

void LeaderComponents::Run() {
  while (true) {
    std::pair<bool, uint64_t> change;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return quitting_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (quitting_) return;
      change = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    const auto [leading, term] = change;
    uint64_t now_running;
    {
      absl::MutexLock lock(&mu_);
      now_running = term_;
    }
    if (leading && term != now_running) {
      StopAll();
      StartAll(term);
      now_running = term;
    } else if (!leading && term == now_running) {
      StopAll();
      now_running = 0;
    }
    absl::MutexLock lock(&mu_);
    term_ = now_running;
    busy_ = false;
  }
}

void LeaderComponents::StartAll(uint64_t term) {
  orchestrator_ = std::make_unique<orchestrator::OrchestratorLoop>(
      orchestrator::OrchestratorLoop::Options{options_.store, options_.clock, term, options_.ids});
  allocator_ = std::make_unique<allocator::AllocatorLoop>(
      allocator::AllocatorLoop::Options{options_.store, term});
  scheduler_ = std::make_unique<scheduling::SchedulingLoop>(
      scheduling::SchedulingLoop::Options{options_.store, options_.clock, term});
  orchestrator_->Start();
  allocator_->Start();
  scheduler_->Start();
  if (options_.membership != nullptr) {
    roles_ = std::make_unique<RoleManager>(
        RoleManager::Options{options_.store, options_.membership, term});
    roles_->Start();
  }
  if (options_.dispatcher_service != nullptr) {
    dispatcher::Dispatcher::Options d;
    d.store = options_.store;
    d.clock = options_.clock;
    d.leader_term = term;
    d.ids = options_.ids;
    dispatcher_ = std::make_shared<dispatcher::Dispatcher>(d);
    (void)dispatcher_->Start();  // a failed reset of node states is redone by heartbeats
    options_.dispatcher_service->SetDispatcher(dispatcher_);
  }
  if (options_.logs_service != nullptr) {
    logbroker::LogBroker::Options b;
    b.store = options_.store;
    b.clock = options_.clock;
    b.ids = options_.ids;
    log_broker_ = std::make_shared<logbroker::LogBroker>(b);
    (void)log_broker_->Start();  // fails only without a store
    options_.logs_service->SetBroker(log_broker_);
  }
}

void LeaderComponents::StopAll() {
  if (options_.logs_service != nullptr) options_.logs_service->SetBroker(nullptr);
  if (log_broker_) log_broker_->Stop();
  log_broker_.reset();
  if (options_.dispatcher_service != nullptr) options_.dispatcher_service->SetDispatcher(nullptr);
  if (dispatcher_) dispatcher_->Stop();
  dispatcher_.reset();
  if (roles_) roles_->Stop();
  roles_.reset();
  if (orchestrator_) orchestrator_->Stop();
  if (allocator_) allocator_->Stop();
  if (scheduler_) scheduler_->Stop();
  orchestrator_.reset();
  allocator_.reset();
  scheduler_.reset();
}

}  // namespace shoal::manager
