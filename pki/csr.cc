#include "pki/csr.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/openssl_util.h"

namespace shoal::pki {
namespace {

using internal::OpenSslError;

std::string SpkiDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

absl::Status CheckKeyType(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
      internal::ClearOpenSslErrors();
      return absl::InvalidArgumentError("CSR has an EC key without a named curve");
    }
    absl::string_view g(group, len);
    if (g == "prime256v1" || g == "P-256" || g == "secp384r1" || g == "P-384") {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrCat("CSR has an EC key on curve ", g, "; accepted: P-256, P-384"));
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    int bits = EVP_PKEY_get_bits(key);
    if (bits >= 2048) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("CSR has a ", bits, "-bit RSA key; at least 2048 bits are required"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "CSR has a key of type ", EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?",
      "; accepted: ECDSA (P-256, P-384) or RSA (2048 bits or more)"));
}

}  // namespace

absl::StatusOr<std::string> GeneratePrivateKey() {
  internal::PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError(absl::StatusCode::kInternal, "generating a P-256 key");
  return internal::PrivateKeyToPem(key.get());
}

absl::StatusOr<std::string> CreateCsr(absl::string_view key_pem, absl::string_view common_name) {
  ASSIGN_OR_RETURN(internal::PkeyPtr key, internal::ParsePrivateKeyPem(key_pem));
  internal::X509ReqPtr req(X509_REQ_new());
  if (req == nullptr || X509_REQ_set_version(req.get(), 0) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "making a CSR");
  }
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (!common_name.empty() &&
      X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "setting the CSR's common name");
  }
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(absl::StatusCode::kInternal, "signing the CSR");
  }
  internal::BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return OpenSslError(absl::StatusCode::kInternal, "encoding the CSR");
  }
  return internal::BioContents(bio.get());
}

absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr(absl::string_view common_name) {
  KeyAndCsr out;
  ASSIGN_OR_RETURN(out.key_pem, GeneratePrivateKey());
  ASSIGN_OR_RETURN(out.csr_pem, CreateCsr(out.key_pem, common_name));
  return out;
}

absl::StatusOr<CsrInfo> ParseCsr(absl::string_view csr_pem) {
  if (csr_pem.empty()) return absl::InvalidArgumentError("CSR is empty");
  if (csr_pem.size() > internal::kMaxPemBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CSR is ", csr_pem.size(), " bytes, more than the limit of ", internal::kMaxPemBytes));
  }
  internal::BioPtr bio = internal::MemoryBio(csr_pem);
  internal::X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (req == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "CSR is not a PEM certificate request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());  // owned by req
  if (key == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "CSR has no readable public key");
  }
  RETURN_IF_ERROR(CheckKeyType(key));
  if (X509_REQ_verify(req.get(), key) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "CSR signature does not verify with its own public key");
  }
  CsrInfo info;
  info.common_name = internal::NameEntry(X509_REQ_get_subject_name(req.get()), NID_commonName);
  info.public_key = SpkiDer(key);
  if (info.public_key.empty()) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "CSR public key cannot be encoded");
  }
  internal::ClearOpenSslErrors();
  return info;
}

absl::StatusOr<std::string> PublicKeyOf(absl::string_view key_pem) {
  ASSIGN_OR_RETURN(internal::PkeyPtr key, internal::ParsePrivateKeyPem(key_pem));
  return SpkiDer(key.get());
}

}  // namespace shoal::pki
