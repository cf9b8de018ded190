#include "pki/openssl_util.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <climits>

#include "absl/strings/str_cat.h"

namespace shoal::pki::internal {

absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  std::string detail;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!detail.empty()) detail += "; ";
    detail += buf;
  }
  if (detail.empty()) return absl::Status(code, std::string(what));
  return absl::Status(code, absl::StrCat(what, ": ", detail));
}

void ClearOpenSslErrors() { ERR_clear_error(); }

BioPtr MemoryBio(absl::string_view data) {
  // BIO_new_mem_buf takes an int length; callers bound their input well below INT_MAX.
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return "";
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<X509Ptr> ParseX509Pem(absl::string_view pem, absl::string_view what) {
  if (pem.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", pem.size(), " bytes, more than the limit of ", kMaxPemBytes));
  }
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat(what, " is not a PEM certificate"));
  }
  // A second block would be silently ignored by callers that read one: refuse it.
  X509Ptr extra(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ClearOpenSslErrors();  // the expected "no start line" of the second read
  if (extra != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " holds more than one certificate; exactly one is expected"));
  }
  return cert;
}

std::string X509ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioContents(bio.get());
}

std::string X509ToDer(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem) {
  if (pem.empty()) return absl::InvalidArgumentError("private key is empty");
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError("private key is larger than the PEM size limit");
  }
  BioPtr bio = MemoryBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "private key is not a PEM key");
  }
  return key;
}

std::string PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioContents(bio.get());
}

absl::Time Asn1TimeToTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTM(tm, absl::UTCTimeZone());
}

absl::Status SetAsn1Time(ASN1_TIME* t, absl::Time time) {
  if (ASN1_TIME_set(t, absl::ToTimeT(time)) == nullptr) {
    return OpenSslError(absl::StatusCode::kInternal, "setting a certificate time");
  }
  return absl::OkStatus();
}

std::string NameEntry(const X509_NAME* name, int nid) {
  if (name == nullptr) return "";
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, idx);
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

int NameEntryCount(const X509_NAME* name, int nid) {
  int count = 0;
  for (int idx = -1; (idx = X509_NAME_get_index_by_NID(name, nid, idx)) >= 0;) ++count;
  return count;
}

}  // namespace shoal::pki::internal
