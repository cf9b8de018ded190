// swarmctl: see swarmctl.h and docs/cli.md.
#include <unistd.h>

#include <iostream>

#include "cli/swarmctl.h"

int main(int argc, char** argv) {
  shoal::cli::RunOptions options;
  options.tty = isatty(STDOUT_FILENO) == 1;
  return shoal::cli::Run(argc, argv, std::cout, std::cerr, options);
}
