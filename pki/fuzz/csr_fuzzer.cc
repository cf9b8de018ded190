// Fuzz target: CSR parsing (what NodeCA reads from joining nodes) and certificate parsing (what
// the authorizer reads from peers). Invariants beyond "no crash": a CSR that parses can be
// signed, and the certificate carries the CSR's public key and the CA's chosen subject.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/testing/manual_clock.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/root_ca.h"

namespace {

const shoal::pki::RootCa& Ca() {
  static shoal::ManualClock* clock = new shoal::ManualClock();
  static shoal::pki::RootCa* ca = [] {
    auto created = shoal::pki::RootCa::Create(*clock);
    if (!created.ok()) std::abort();
    return created->release();
  }();
  return *ca;
}

// Inputs that are not PEM are taken as DER and wrapped, so that mutations reach the ASN.1 parser
// instead of stopping at the base64 layer.
std::string AsPem(absl::string_view data, absl::string_view label) {
  if (absl::StartsWith(data, "-----")) return std::string(data);
  return absl::StrCat("-----BEGIN ", label, "-----\n", absl::Base64Escape(data), "\n-----END ",
                      label, "-----\n");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view raw(reinterpret_cast<const char*>(data), size);
  std::string text = AsPem(raw, "CERTIFICATE REQUEST");
  absl::StatusOr<shoal::pki::CsrInfo> csr = shoal::pki::ParseCsr(text);
  if (csr.ok()) {
    shoal::pki::RootCa::SignRequest req;
    req.csr_pem = text;
    req.subject = "fuzz-node";
    req.role = shoal::api::CERTIFICATE_ROLE_WORKER;
    req.cluster_id = "fuzz-cluster";
    absl::StatusOr<std::string> cert = Ca().Sign(req);
    if (!cert.ok()) std::abort();
    absl::StatusOr<shoal::pki::CertificateInfo> info = shoal::pki::ParseCertificate(*cert);
    if (!info.ok() || info->public_key != csr->public_key || info->subject != "fuzz-node") {
      std::abort();
    }
  }
  // The same bytes as a peer certificate.
  (void)shoal::pki::ParseCertificate(AsPem(raw, "CERTIFICATE"));
  return 0;
}
