#include "pki/tls_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pki/certificate.h"
#include "pki/csr.h"

namespace shoal::pki {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("creating", tmp);
  // The mode of open() is filtered by the umask; the key must be 0600 whatever it is.
  if (::fchmod(fd, mode) != 0) {
    ::close(fd);
    return Errno("setting the mode of", tmp);
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno("writing", tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return Errno("syncing", tmp);
  }
  if (::close(fd) != 0) return Errno("closing", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming to", path);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::Status WriteTlsDir(const std::string& dir, const TlsBundle& bundle) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Errno("creating", dir);
  std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  RETURN_IF_ERROR(WriteFileAtomically(prefix + kCaFile, bundle.ca_pem, 0644));
  RETURN_IF_ERROR(WriteFileAtomically(prefix + kKeyFile, bundle.key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomically(prefix + kCertFile, bundle.cert_pem, 0644));
  // The renames are durable once the directory is synced.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsBundle> ReadTlsDir(const std::string& dir) {
  std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  TlsBundle bundle;
  ASSIGN_OR_RETURN(bundle.key_pem, ReadFile(prefix + kKeyFile));
  ASSIGN_OR_RETURN(bundle.cert_pem, ReadFile(prefix + kCertFile));
  ASSIGN_OR_RETURN(bundle.ca_pem, ReadFile(prefix + kCaFile));
  return bundle;
}

absl::Status CheckTlsBundle(const TlsBundle& bundle, absl::Time now) {
  ASSIGN_OR_RETURN(CertificateInfo info, VerifyCertificate(bundle.cert_pem, bundle.ca_pem, now));
  ASSIGN_OR_RETURN(std::string public_key, PublicKeyOf(bundle.key_pem));
  if (public_key != info.public_key) {
    return absl::InvalidArgumentError("private key does not belong to the certificate");
  }
  return absl::OkStatus();
}

}  // namespace shoal::pki
