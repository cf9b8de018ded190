#include "pki/operator_certificate.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/status_macros.h"
#include "pki/certificate.h"
#include "pki/csr.h"

namespace shoal::pki {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

absl::Status ValidateOperatorName(absl::string_view name) {
  constexpr absl::string_view kRule = "1-63 characters, [a-zA-Z0-9][a-zA-Z0-9_.-]*";
  if (name.empty() || name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat("operator name has ", name.size(), " characters; expected ", kRule));
  }
  if (!IsAlnum(name[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("operator name must start with a letter or digit (", kRule, ")"));
  }
  for (size_t i = 1; i < name.size(); ++i) {
    char c = name[i];
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("operator name has an invalid character at position ", i, " (", kRule, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<api::IssueOperatorCertificateResponse> SignOperatorCertificate(
    const RootCa& ca, absl::string_view cluster_id,
    const api::IssueOperatorCertificateRequest& request, absl::Duration validity) {
  RETURN_IF_ERROR(ValidateOperatorName(request.name()));
  RootCa::SignRequest sign;
  sign.csr_pem = request.csr();
  sign.subject = request.name();
  sign.role = api::CERTIFICATE_ROLE_OPERATOR;
  sign.cluster_id = std::string(cluster_id);
  sign.validity = validity;
  api::IssueOperatorCertificateResponse response;
  ASSIGN_OR_RETURN(*response.mutable_certificate(), ca.Sign(sign));
  response.set_ca_certificate(ca.cert_pem());
  return response;
}

absl::StatusOr<TlsBundle> RequestOperatorBundle(api::Control::StubInterface& control,
                                                absl::string_view name, absl::Duration timeout) {
  RETURN_IF_ERROR(ValidateOperatorName(name));
  ASSIGN_OR_RETURN(KeyAndCsr kc, GenerateKeyAndCsr(name));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  api::IssueOperatorCertificateRequest req;
  req.set_csr(kc.csr_pem);
  req.set_name(std::string(name));
  api::IssueOperatorCertificateResponse resp;
  RETURN_IF_ERROR(Annotate(FromGrpcStatus(control.IssueOperatorCertificate(&ctx, req, &resp)),
                           "requesting an operator certificate"));
  TlsBundle bundle{kc.key_pem, resp.certificate(), resp.ca_certificate()};
  RETURN_IF_ERROR(CheckTlsBundle(bundle, absl::Now()));
  ASSIGN_OR_RETURN(CertificateInfo info, ParseCertificate(bundle.cert_pem));
  if (info.role != api::CERTIFICATE_ROLE_OPERATOR || info.subject != name) {
    return absl::InternalError(absl::StrCat("the manager returned a certificate for ", info.subject,
                                            " with role ", RoleName(info.role)));
  }
  return bundle;
}

}  // namespace shoal::pki
