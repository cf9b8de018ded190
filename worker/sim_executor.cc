#include "worker/sim_executor.h"

#include "absl/strings/str_cat.h"

namespace shoal::worker {
namespace {

class SimRunner : public TaskRunner {
 public:
  explicit SimRunner(std::string image) : image_(std::move(image)) {}

  absl::Status Prepare() override {
    if (image_ == "sim:reject") {
      return absl::NotFoundError(absl::StrCat("image ", image_, " not found"));
    }
    return absl::OkStatus();
  }
  absl::Status Start() override {
    started_ = true;
    return absl::OkStatus();
  }
  std::optional<Exit> Poll() override {
    if (stopped_) return Exit{137, "stopped"};
    if (!started_) return std::nullopt;
    if (image_ == "sim:fail") return Exit{1, ""};
    if (image_ == "sim:exit0") return Exit{0, ""};
    return std::nullopt;
  }
  absl::Status Stop(absl::Duration) override {
    stopped_ = true;
    return absl::OkStatus();
  }
  absl::Status Remove() override { return absl::OkStatus(); }

 private:
  const std::string image_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TaskRunner>> SimExecutor::Runner(const api::Task& task) {
  if (!task.spec().has_container()) {
    return absl::InvalidArgumentError("the sim executor runs container specs only");
  }
  return std::make_unique<SimRunner>(task.spec().container().image());
}

}  // namespace shoal::worker
