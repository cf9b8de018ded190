// Private to pki/: owning pointers for OpenSSL objects and OpenSSL errors as Status.
//
// Thread-safe (pure functions; OpenSSL 3's error queue is per thread).
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shoal::pki::internal {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509ReqDeleter {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
struct X509StoreDeleter {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct X509StoreCtxDeleter {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509ReqPtr = std::unique_ptr<X509_REQ, X509ReqDeleter>;
using X509StorePtr = std::unique_ptr<X509_STORE, X509StoreDeleter>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, X509StoreCtxDeleter>;

// `code` with "<what>: <OpenSSL's queued errors>"; clears this thread's error queue.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view what);

// Drops whatever OpenSSL queued on this thread (after an expected failure).
void ClearOpenSslErrors();

// A read-only memory BIO over `data` (which must outlive it).
BioPtr MemoryBio(absl::string_view data);

// Everything written to a memory BIO.
std::string BioContents(BIO* bio);

// PEM input is bounded: nothing Shoal exchanges comes near it.
inline constexpr size_t kMaxPemBytes = 64 * 1024;

// The only certificate in `pem` (a single PEM block; trailing blocks are an error).
// INVALID_ARGUMENT names `what` ("certificate", "root CA certificate").
absl::StatusOr<X509Ptr> ParseX509Pem(absl::string_view pem, absl::string_view what);

// The PEM and DER encodings of `cert`.
std::string X509ToPem(X509* cert);
std::string X509ToDer(X509* cert);

// The private key in `pem` (PKCS#8 or traditional). INVALID_ARGUMENT if it is not one.
absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem);

// PKCS#8 PEM of a private key.
std::string PrivateKeyToPem(EVP_PKEY* key);

// ASN1_TIME <-> absl::Time.
absl::Time Asn1TimeToTime(const ASN1_TIME* t);
absl::Status SetAsn1Time(ASN1_TIME* t, absl::Time time);

// The first value of attribute `nid` (NID_commonName, ...) in `name`, or "" if absent.
std::string NameEntry(const X509_NAME* name, int nid);

// The number of entries of attribute `nid` in `name`.
int NameEntryCount(const X509_NAME* name, int nid);

}  // namespace shoal::pki::internal
