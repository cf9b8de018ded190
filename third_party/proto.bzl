"""C++ (and gRPC) code generation from .proto files with Debian's protoc and grpc_cpp_plugin.

Bazel 4's proto rules would download protoc; this macro calls the system binaries instead.

    load("//third_party:proto.bzl", "shoal_cc_proto_library")

    shoal_cc_proto_library(
        name = "control",
        srcs = ["control.proto"],
        proto_deps = [":objects"],   # other shoal_cc_proto_library targets it imports
        grpc = True,                 # also generate service stubs (and link gRPC)
    )

creates:
  <name>          cc_library with the generated code; #include "<package>/<file>.pb.h"
                  (and "<file>.grpc.pb.h" when grpc = True)
  <name>_protos   filegroup of the .proto files, its imports' included (for protoc of dependents)

Imports are written relative to the workspace root (import "proto/types.proto";). Generated
code is compiled with the project's warnings but is exempt from -Werror (see .bazelrc).
"""

_PROTOC = "/usr/bin/protoc"
_GRPC_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def _strip_ext(src):
    if not src.endswith(".proto"):
        fail("shoal_cc_proto_library: %s is not a .proto file" % src)
    return src[:-len(".proto")]

def shoal_cc_proto_library(name, srcs, proto_deps = [], grpc = False, visibility = None, testonly = False):
    """Generates and compiles the C++ code of `srcs`.

    Args:
      name: target name of the cc_library.
      srcs: .proto files of this package.
      proto_deps: shoal_cc_proto_library targets whose files `srcs` import.
      grpc: whether the files declare services whose stubs should be generated.
      visibility: visibility of the cc_library and the filegroup.
      testonly: passed through.
    """
    native.filegroup(
        name = name + "_protos",
        srcs = srcs + [d + "_protos" for d in proto_deps],
        visibility = visibility,
        testonly = testonly,
    )

    hdrs = []
    cc_srcs = []
    for src in srcs:
        base = _strip_ext(src)
        hdrs.append(base + ".pb.h")
        cc_srcs.append(base + ".pb.cc")
        if grpc:
            hdrs.append(base + ".grpc.pb.h")
            cc_srcs.append(base + ".grpc.pb.cc")

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=%s " % _GRPC_PLUGIN

    native.genrule(
        name = name + "_codegen",
        srcs = srcs + [d + "_protos" for d in proto_deps],
        outs = hdrs + cc_srcs,
        cmd = "%s -I. --cpp_out=$(GENDIR) %s%s" % (
            _PROTOC,
            grpc_flags,
            " ".join(["$(location %s)" % s for s in srcs]),
        ),
        message = "protoc %s" % name,
        testonly = testonly,
    )

    deps = list(proto_deps) + ["//third_party/system:protobuf"]
    if grpc:
        deps.append("//third_party/system:grpc")

    native.cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        deps = deps,
        visibility = visibility,
        testonly = testonly,
    )

def shoal_proto_descriptor_set(name, protos, visibility = None, testonly = False):
    """A FileDescriptorSet (with comments: --include_source_info) of `protos` and their imports.

    Args:
      name: target name; the output is <name>.pb.
      protos: shoal_cc_proto_library "_protos" filegroups or .proto files.
      visibility: visibility of the output.
      testonly: passed through.
    """
    native.genrule(
        name = name,
        srcs = protos,
        outs = [name + ".pb"],
        cmd = "%s -I. --include_imports --include_source_info --descriptor_set_out=$@ $(SRCS)" % _PROTOC,
        visibility = visibility,
        testonly = testonly,
    )
