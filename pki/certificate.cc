#include "pki/certificate.h"

#include <openssl/bn.h>
#include <openssl/x509_vfy.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/openssl_util.h"

namespace shoal::pki {
namespace {

using internal::X509Ptr;

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<CertificateInfo> InfoOf(X509* cert) {
  const X509_NAME* subject = X509_get_subject_name(cert);
  struct Attr {
    int nid;
    const char* name;
  };
  for (Attr a : {Attr{NID_commonName, "CN"}, Attr{NID_organizationalUnitName, "OU"},
                 Attr{NID_organizationName, "O"}}) {
    int n = internal::NameEntryCount(subject, a.nid);
    if (n != 1) {
      return absl::InvalidArgumentError(absl::StrCat("certificate subject has ", n, " ", a.name,
                                                     " attributes, expected exactly one"));
    }
  }
  CertificateInfo info;
  info.subject = internal::NameEntry(subject, NID_commonName);
  std::string ou = internal::NameEntry(subject, NID_organizationalUnitName);
  absl::StatusOr<api::CertificateRole> role = RoleFromName(ou);
  if (!role.ok())
    return absl::InvalidArgumentError(absl::StrCat("certificate ", role.status().message()));
  info.role = *role;
  info.cluster_id = internal::NameEntry(subject, NID_organizationName);
  if (info.subject.empty() || info.cluster_id.empty()) {
    return absl::InvalidArgumentError("certificate subject has an empty CN or O");
  }
  info.not_before = internal::Asn1TimeToTime(X509_get0_notBefore(cert));
  info.not_after = internal::Asn1TimeToTime(X509_get0_notAfter(cert));
  info.issuer = internal::NameEntry(X509_get_issuer_name(cert), NID_commonName);
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (serial != nullptr) {
    char* hex = BN_bn2hex(serial);
    info.serial = absl::AsciiStrToLower(hex);
    OPENSSL_free(hex);
    BN_free(serial);
  }
  unsigned char* spki = nullptr;
  int n = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
  if (n > 0) {
    info.public_key.assign(reinterpret_cast<char*>(spki), static_cast<size_t>(n));
    OPENSSL_free(spki);
  }
  return info;
}

}  // namespace

absl::string_view RoleName(api::CertificateRole role) {
  switch (role) {
    case api::CERTIFICATE_ROLE_WORKER:
      return "worker";
    case api::CERTIFICATE_ROLE_MANAGER:
      return "manager";
    case api::CERTIFICATE_ROLE_OPERATOR:
      return "operator";
    default:
      return "";
  }
}

absl::StatusOr<api::CertificateRole> RoleFromName(absl::string_view ou) {
  for (api::CertificateRole r : {api::CERTIFICATE_ROLE_WORKER, api::CERTIFICATE_ROLE_MANAGER,
                                 api::CERTIFICATE_ROLE_OPERATOR}) {
    if (ou == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(absl::StrCat("role (OU) \"", absl::CHexEscape(ou.substr(0, 32)),
                                                 "\" is not one of manager, worker, operator"));
}

api::CertificateRole CertificateRoleOf(api::NodeRole role) {
  return role == api::NODE_ROLE_MANAGER ? api::CERTIFICATE_ROLE_MANAGER
                                        : api::CERTIFICATE_ROLE_WORKER;
}

absl::StatusOr<CertificateInfo> ParseCertificate(absl::string_view pem) {
  ASSIGN_OR_RETURN(X509Ptr cert, internal::ParseX509Pem(pem, "certificate"));
  return InfoOf(cert.get());
}

absl::StatusOr<CertificateInfo> VerifyCertificate(absl::string_view pem,
                                                  absl::string_view root_ca_pem, absl::Time now) {
  ASSIGN_OR_RETURN(X509Ptr cert, internal::ParseX509Pem(pem, "certificate"));
  ASSIGN_OR_RETURN(X509Ptr root, internal::ParseX509Pem(root_ca_pem, "root CA certificate"));
  ASSIGN_OR_RETURN(CertificateInfo info, InfoOf(cert.get()));

  internal::X509StorePtr store(X509_STORE_new());
  internal::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (store == nullptr || ctx == nullptr || X509_STORE_add_cert(store.get(), root.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return internal::OpenSslError(absl::StatusCode::kInternal, "setting up certificate checks");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  // Only the root is trusted: no intermediate CAs, no partial chains.
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT);
  int ok = X509_verify_cert(ctx.get());
  internal::ClearOpenSslErrors();
  if (ok == 1) return info;

  int err = X509_STORE_CTX_get_error(ctx.get());
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      if (X509_STORE_CTX_get_error_depth(ctx.get()) > 0) {
        return absl::UnauthenticatedError("the cluster's root CA certificate has expired");
      }
      return absl::UnauthenticatedError(
          absl::StrCat("certificate of ", info.subject, " expired at ", Rfc3339(info.not_after),
                       " (now ", Rfc3339(now), "); the node must renew or rejoin"));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return absl::UnauthenticatedError(
          absl::StrCat("certificate of ", info.subject, " is not valid before ",
                       Rfc3339(info.not_before), " (now ", Rfc3339(now), "); check the clocks"));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return absl::UnauthenticatedError(
          absl::StrCat("certificate of ", info.subject, " (issuer \"", info.issuer,
                       "\") was not issued by this cluster's root CA"));
    default:
      return absl::UnauthenticatedError(absl::StrCat(
          "certificate of ", info.subject, " is not valid: ", X509_verify_cert_error_string(err)));
  }
}

}  // namespace shoal::pki
