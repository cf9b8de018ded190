#include "pki/root_ca.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/certificate.h"
#include "pki/csr.h"
#include "pki/join_token.h"
#include "pki/openssl_util.h"

namespace shoal::pki {
namespace {

using internal::OpenSslError;
using internal::PkeyPtr;
using internal::X509Ptr;

absl::Status SetRandomSerial(X509* cert) {
  // 127 random bits: positive, unique with overwhelming probability (RFC 5280 allows 20 bytes).
  BIGNUM* bn = BN_new();
  if (bn == nullptr || BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == nullptr) {
    BN_free(bn);
    return OpenSslError(absl::StatusCode::kInternal, "choosing a serial number");
  }
  BN_free(bn);
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, absl::StrCat("making extension ", value));
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError(absl::StatusCode::kInternal, "adding an extension");
  return absl::OkStatus();
}

absl::Status AddNameEntry(X509_NAME* name, int nid, absl::string_view value) {
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("setting subject attribute ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

// The DNS names of a certificate: "swarm-<role>" (what clients ask for as the server name, so a
// worker's certificate never answers for "swarm-manager"), and the subject when it is a name.
absl::Status AddSubjectAltNames(X509* cert, api::CertificateRole role, absl::string_view subject) {
  std::vector<std::string> names = {absl::StrCat("swarm-", RoleName(role))};
  bool subject_is_name = std::all_of(subject.begin(), subject.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
  if (subject_is_name) names.emplace_back(subject);
  GENERAL_NAMES* gens = sk_GENERAL_NAME_new_null();
  if (gens == nullptr) return OpenSslError(absl::StatusCode::kInternal, "allocating SANs");
  for (const std::string& name : names) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (gen == nullptr || ia5 == nullptr ||
        ASN1_STRING_set(ia5, name.data(), static_cast<int>(name.size())) != 1) {
      GENERAL_NAME_free(gen);
      ASN1_IA5STRING_free(ia5);
      GENERAL_NAMES_free(gens);
      return OpenSslError(absl::StatusCode::kInternal, "making a SAN");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(gens, gen);
  }
  int ok = X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
  GENERAL_NAMES_free(gens);
  if (ok != 1) return OpenSslError(absl::StatusCode::kInternal, "adding SANs");
  return absl::OkStatus();
}

}  // namespace

struct RootCa::Key {
  PkeyPtr key;
  X509Ptr cert;
};

RootCa::RootCa(const Clock& clock, std::unique_ptr<Key> key, std::string cert_pem,
               std::string key_pem, std::string digest, absl::Time not_after)
    : clock_(clock),
      key_(std::move(key)),
      cert_pem_(std::move(cert_pem)),
      key_pem_(std::move(key_pem)),
      digest_(std::move(digest)),
      not_after_(not_after) {}

RootCa::~RootCa() = default;

absl::StatusOr<std::unique_ptr<RootCa>> RootCa::Create(const Clock& clock,
                                                       absl::Duration validity) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (key == nullptr || cert == nullptr || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "generating the root CA key");
  }
  RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  absl::Time start = clock.Now() - kClockSkewAllowance;
  RETURN_IF_ERROR(internal::SetAsn1Time(X509_getm_notBefore(cert.get()), start));
  RETURN_IF_ERROR(internal::SetAsn1Time(X509_getm_notAfter(cert.get()), start + validity));
  X509_NAME* name = X509_get_subject_name(cert.get());
  RETURN_IF_ERROR(AddNameEntry(name, NID_commonName, "swarm-ca"));
  if (X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "making the root CA certificate");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_key_usage,
                               "critical,keyCertSign,cRLSign,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "self-signing the root CA certificate");
  }
  return Load(internal::X509ToPem(cert.get()), internal::PrivateKeyToPem(key.get()), clock);
}

absl::StatusOr<std::unique_ptr<RootCa>> RootCa::Load(absl::string_view cert_pem,
                                                     absl::string_view key_pem,
                                                     const Clock& clock) {
  auto key = std::make_unique<Key>();
  ASSIGN_OR_RETURN(key->cert, internal::ParseX509Pem(cert_pem, "root CA certificate"));
  ASSIGN_OR_RETURN(key->key, internal::ParsePrivateKeyPem(key_pem));
  if (X509_check_ca(key->cert.get()) < 1) {
    internal::ClearOpenSslErrors();
    return absl::InvalidArgumentError("root CA certificate is not a CA certificate");
  }
  if (X509_check_private_key(key->cert.get(), key->key.get()) != 1) {
    internal::ClearOpenSslErrors();
    return absl::InvalidArgumentError("root CA key does not belong to the root CA certificate");
  }
  absl::Time not_after = internal::Asn1TimeToTime(X509_get0_notAfter(key->cert.get()));
  if (not_after <= clock.Now()) {
    return absl::FailedPreconditionError(
        absl::StrCat("root CA certificate expired at ",
                     absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", not_after, absl::UTCTimeZone()),
                     "; the cluster needs a new root CA"));
  }
  std::string pem = internal::X509ToPem(key->cert.get());
  ASSIGN_OR_RETURN(std::string digest, CaDigest(pem));
  std::string key_out = internal::PrivateKeyToPem(key->key.get());
  return std::unique_ptr<RootCa>(new RootCa(clock, std::move(key), std::move(pem),
                                            std::move(key_out), std::move(digest), not_after));
}

absl::StatusOr<std::unique_ptr<RootCa>> RootCa::FromProto(const api::RootCA& root,
                                                          const Clock& clock) {
  return Load(root.ca_cert(), root.ca_key(), clock);
}

api::RootCA RootCa::ToProto() const {
  api::RootCA out;
  out.set_ca_cert(cert_pem_);
  out.set_ca_key(key_pem_);
  out.set_ca_cert_hash(DigestToHexString(digest_));
  return out;
}

absl::StatusOr<std::string> RootCa::Sign(const SignRequest& request) const {
  if (request.subject.empty() || request.subject.size() > kMaxCommonNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("certificate subject must be 1-",
                                                   kMaxCommonNameLength, " characters, got ",
                                                   request.subject.size()));
  }
  if (RoleName(request.role).empty()) {
    return absl::InvalidArgumentError("certificate role is unspecified");
  }
  if (request.cluster_id.empty() || request.cluster_id.size() > kMaxCommonNameLength) {
    return absl::InvalidArgumentError("cluster id must be 1-64 characters");
  }
  if (request.validity < kMinNodeCertValidity) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate validity ", absl::FormatDuration(request.validity),
                     " is below the minimum of ", absl::FormatDuration(kMinNodeCertValidity)));
  }
  RETURN_IF_ERROR(ParseCsr(request.csr_pem).status());
  internal::BioPtr bio = internal::MemoryBio(request.csr_pem);
  internal::X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (req == nullptr) return OpenSslError(absl::StatusCode::kInvalidArgument, "reading the CSR");
  EVP_PKEY* subject_key = X509_REQ_get0_pubkey(req.get());

  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "making a certificate");
  }
  RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  absl::Time now = clock_.Now();
  absl::Time start = now - kClockSkewAllowance;
  absl::Time end = std::min(now + request.validity, not_after_);
  RETURN_IF_ERROR(internal::SetAsn1Time(X509_getm_notBefore(cert.get()), start));
  RETURN_IF_ERROR(internal::SetAsn1Time(X509_getm_notAfter(cert.get()), end));
  X509_NAME* name = X509_get_subject_name(cert.get());
  RETURN_IF_ERROR(AddNameEntry(name, NID_organizationName, request.cluster_id));
  RETURN_IF_ERROR(AddNameEntry(name, NID_organizationalUnitName, RoleName(request.role)));
  RETURN_IF_ERROR(AddNameEntry(name, NID_commonName, request.subject));
  X509* issuer = key_->cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_set_pubkey(cert.get(), subject_key) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "filling the certificate");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), request.role, request.subject));
  if (X509_sign(cert.get(), key_->key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "signing the certificate");
  }
  return internal::X509ToPem(cert.get());
}

absl::StatusOr<api::RootCA> NewClusterRootCa(const Clock& clock, const RandomBytesFn& random) {
  ASSIGN_OR_RETURN(std::unique_ptr<RootCa> ca, RootCa::Create(clock));
  api::RootCA root = ca->ToProto();
  root.mutable_join_tokens()->set_worker(GenerateJoinToken(ca->digest(), random).ToString());
  root.mutable_join_tokens()->set_manager(GenerateJoinToken(ca->digest(), random).ToString());
  return root;
}

absl::StatusOr<std::string> RotateJoinToken(api::RootCA& root, api::NodeRole role,
                                            const RandomBytesFn& random) {
  ASSIGN_OR_RETURN(std::string digest, CaDigest(root.ca_cert()));
  std::string token = GenerateJoinToken(digest, random).ToString();
  if (role == api::NODE_ROLE_MANAGER) {
    root.mutable_join_tokens()->set_manager(token);
  } else {
    root.mutable_join_tokens()->set_worker(token);
  }
  return token;
}

absl::StatusOr<absl::Duration> NodeCertValidity(const absl::Duration* configured) {
  if (configured == nullptr) return kDefaultNodeCertValidity;
  if (*configured < kMinNodeCertValidity) {
    return absl::InvalidArgumentError(absl::StrCat("node certificate expiry ",
                                                   absl::FormatDuration(*configured),
                                                   " is below the minimum of 1h"));
  }
  return *configured;
}

}  // namespace shoal::pki
