#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "absl/strings/ascii.h"

namespace shoal::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

// Time in UTC with milliseconds, a one-letter level, then the formatted text.
constexpr char kPattern[] = "%Y-%m-%dT%H:%M:%S.%eZ %L %v";

spdlog::logger& Logger() {
  static spdlog::logger* logger = [] {
    auto* l = new spdlog::logger("shoal", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern(kPattern, spdlog::pattern_time_type::utc);
    // Our own level check runs first; spdlog passes everything it is given.
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarning: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::err;
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

void AppendValue(std::string* out, absl::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v.data(), v.size());
    return;
  }
  out->push_back('"');
  for (char c : v) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      case '\r': out->append("\\r"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarning;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level \"", name, "\": use debug, info, warning or error"));
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

Level GetLevel() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::string Format(absl::string_view component, absl::string_view message, Fields fields) {
  std::string out = absl::StrCat(component, ": ", message);
  for (const Field& f : fields) {
    out.push_back(' ');
    out.append(f.key());
    out.push_back('=');
    AppendValue(&out, f.value());
  }
  return out;
}

void Write(Level level, absl::string_view component, absl::string_view message, Fields fields) {
  if (!Enabled(level)) return;
  const std::string text = Format(component, message, fields);
  Logger().log(ToSpdlog(level), "{}", text);
}

namespace {

// Keeps formatted lines in memory.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string Text() {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    text_.append(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

}  // namespace

struct ScopedCapture::State {
  std::shared_ptr<CaptureSink> sink;
  std::vector<spdlog::sink_ptr> saved;
};

ScopedCapture::ScopedCapture() : state_(std::make_unique<State>()) {
  state_->sink = std::make_shared<CaptureSink>();
  state_->sink->set_formatter(
      std::make_unique<spdlog::pattern_formatter>(kPattern, spdlog::pattern_time_type::utc));
  spdlog::logger& logger = Logger();
  state_->saved = logger.sinks();
  logger.sinks() = {state_->sink};
}

ScopedCapture::~ScopedCapture() { Logger().sinks() = state_->saved; }

std::string ScopedCapture::Text() const { return state_->sink->Text(); }

}  // namespace shoal::log
