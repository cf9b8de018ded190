// Logging: one facade over spdlog (Debian's libspdlog), with levels and structured key=value
// fields. Lines go to stderr as
//
//   2026-11-24T05:30:00.123Z I raft: became leader term=5 id=3ax9y8w2r5t6u7i8o9p0q1w2e
//
// so journald and grep both read them. Values with spaces, quotes or '=' are quoted.
//
// Thread-safe: any thread may log; SetLevel may be called at any time.
//
//   shoal::log::Info("raft", "became leader", {{"term", term}, {"id", id}});
//   if (shoal::log::Enabled(shoal::log::Level::kDebug)) { ...expensive fields... }
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace shoal::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warn" or "warning", "error" (any case); INVALID_ARGUMENT otherwise, naming
// the accepted values.
absl::StatusOr<Level> ParseLevel(absl::string_view name);

// Lines below `level` are dropped. The default is kInfo.
void SetLevel(Level level);
Level GetLevel();
bool Enabled(Level level);

// One key=value pair. Values are formatted when the field is made.
class Field {
 public:
  Field(absl::string_view key, absl::string_view value) : key_(key), value_(value) {}
  Field(absl::string_view key, const char* value) : key_(key), value_(value) {}
  Field(absl::string_view key, const std::string& value) : key_(key), value_(value) {}
  Field(absl::string_view key, bool value) : key_(key), value_(value ? "true" : "false") {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  Field(absl::string_view key, T value) : key_(key), value_(absl::StrCat(value)) {}
  Field(absl::string_view key, absl::Duration value)
      : key_(key), value_(absl::FormatDuration(value)) {}
  Field(absl::string_view key, absl::Time value)
      : key_(key), value_(absl::FormatTime(absl::RFC3339_full, value, absl::UTCTimeZone())) {}
  Field(absl::string_view key, const absl::Status& value) : key_(key), value_(value.ToString()) {}

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }

 private:
  std::string key_;
  std::string value_;
};

using Fields = std::initializer_list<Field>;

// "<component>: <message> k1=v1 k2="v 2"": the text of a line after its time and level.
std::string Format(absl::string_view component, absl::string_view message, Fields fields);

// Writes one line if `level` is enabled.
void Write(Level level, absl::string_view component, absl::string_view message, Fields fields = {});

inline void Debug(absl::string_view component, absl::string_view message, Fields fields = {}) {
  Write(Level::kDebug, component, message, fields);
}
inline void Info(absl::string_view component, absl::string_view message, Fields fields = {}) {
  Write(Level::kInfo, component, message, fields);
}
inline void Warning(absl::string_view component, absl::string_view message, Fields fields = {}) {
  Write(Level::kWarning, component, message, fields);
}
inline void Error(absl::string_view component, absl::string_view message, Fields fields = {}) {
  Write(Level::kError, component, message, fields);
}

// While alive, lines go to an in-memory buffer instead of stderr (for tests). Not nestable;
// make it before starting threads that log, and destroy it after they stop.
class ScopedCapture {
 public:
  ScopedCapture();
  ~ScopedCapture();
  ScopedCapture(const ScopedCapture&) = delete;
  ScopedCapture& operator=(const ScopedCapture&) = delete;

  // Everything written since construction, one line per entry, each ending in '\n'.
  std::string Text() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shoal::log
