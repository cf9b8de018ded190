"""shoal_fuzz_target: a libFuzzer binary (clang, manual) and a corpus replay test (any compiler)."""

def shoal_fuzz_target(name, srcs, deps, corpus, corpus_dir):
    """Declares <name> (libFuzzer, tagged manual) and <name>_replay (cc_test).

    Args:
      name: target name of the fuzzer.
      srcs: sources defining LLVMFuzzerTestOneInput.
      deps: their dependencies.
      corpus: the corpus files (seeds and regression inputs).
      corpus_dir: the corpus folder, relative to this package.
    """
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        testonly = True,
        tags = ["manual"],
    )
    native.cc_test(
        name = name + "_replay",
        size = "small",
        srcs = srcs,
        deps = deps + ["//common:fuzz_replay_main"],
        data = corpus,
        args = [native.package_name() + "/" + corpus_dir],
    )
