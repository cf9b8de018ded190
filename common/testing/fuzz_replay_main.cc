// Replays a fuzz target's corpus (seeds and every crash ever found, kept as regression inputs)
// through LLVMFuzzerTestOneInput, in the ordinary gcc (and ASan) builds. The corpus
// directories are given as arguments by the BUILD rule.
#include <dirent.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> g_dirs;

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(dir + "/" + name);
  }
  closedir(d);
  return out;
}

TEST(FuzzReplayTest, EveryCorpusInputRunsWithoutCrashing) {
  int inputs = 0;
  for (const std::string& dir : g_dirs) {
    for (const std::string& path : Files(dir)) {
      std::ifstream in(path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string data = ss.str();
      SCOPED_TRACE(path);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
      ++inputs;
    }
  }
  EXPECT_GT(inputs, 0) << "empty corpus";
}

TEST(FuzzReplayTest, EmptyAndTinyInputsRun) {
  LLVMFuzzerTestOneInput(nullptr, 0);
  const uint8_t one = 'S';
  LLVMFuzzerTestOneInput(&one, 1);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) g_dirs.push_back(argv[i]);
  return RUN_ALL_TESTS();
}
