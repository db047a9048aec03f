// test/support/test_certificates.h — certificates and keys for TLS tests, made at run time with
// OpenSSL's API into a temporary directory (removed at exit). No private key is ever committed.
//
// Why generated, not committed: a committed key is a key anyone can use, and scanners flag it;
// generating an EC P-256 CA and two leaves takes a few milliseconds, so there is nothing to save.
// What is made (one set per process, on first use):
//   - ca: a CA ("dotgate test CA"); leaf: "mx.test" (SAN DNS:mx.test) signed by it, whose
//     cert_file holds the leaf then the CA (a chain, as an admin's file would);
//   - rogue: a self-signed "mx.test" that no test CA vouches for (the bad certificate);
//   - other_ca: a CA that signed nothing here (a verifying client trusting it refuses the leaf).
// Used by the unit tests (test/unit/tls, test/unit/net), the fuzzer and the bench. A test that
// wants RSA (the bench) calls make_set() with KeyType::Rsa2048.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/config/config.h"

namespace dotgate::test {

enum class KeyType { EcP256, Rsa2048 };

struct CertificateSet {
  std::string dir;
  std::string ca_file;        // the CA that signed the leaf
  std::string cert_file;      // the leaf "mx.test", then the CA
  std::string key_file;
  std::string rogue_cert_file;  // self-signed "mx.test"
  std::string rogue_key_file;
  std::string other_ca_file;  // a CA that signed nothing here

  config::TlsConfig server_config() const {
    config::TlsConfig c;
    c.enabled = true;
    c.cert_file = cert_file;
    c.key_file = key_file;
    return c;
  }
  config::TlsConfig rogue_server_config() const {
    config::TlsConfig c = server_config();
    c.cert_file = rogue_cert_file;
    c.key_file = rogue_key_file;
    return c;
  }
};

namespace certs_detail {

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificates: ") + what);
}

inline EVP_PKEY* new_key(KeyType type) {
  EVP_PKEY* k = type == KeyType::EcP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  check(k != nullptr, "key generation");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by issuer/issuer_key (itself when null).
inline X509* new_cert(EVP_PKEY* key, const char* cn, bool is_ca, X509* issuer, EVP_PKEY* issuer_key, long serial) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 7L * 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("dotgate tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer ? issuer : x;
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
  if (is_ca) {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, signer, NID_subject_alt_name, (std::string("DNS:") + cn).c_str());
    add_ext(x, signer, NID_ext_key_usage, "serverAuth");
  }
  check(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0, "signing");
  return x;
}

inline void write_pem(const std::string& path, X509* first, X509* second = nullptr) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "cannot write a certificate file");
  PEM_write_X509(f, first);
  if (second) PEM_write_X509(f, second);
  std::fclose(f);
}

inline void write_key(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  check(f != nullptr, "cannot write a key file");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

}  // namespace certs_detail

// A fresh set in a new temporary directory; the caller removes `dir` (or use test_certificates()).
inline CertificateSet make_certificate_set(KeyType type = KeyType::EcP256) {
  using namespace certs_detail;
  std::string pattern = (std::filesystem::temp_directory_path() / "dotgate-tls-XXXXXX").string();
  check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  CertificateSet s;
  s.dir = pattern;
  s.ca_file = s.dir + "/ca.pem";
  s.cert_file = s.dir + "/cert.pem";
  s.key_file = s.dir + "/key.pem";
  s.rogue_cert_file = s.dir + "/rogue-cert.pem";
  s.rogue_key_file = s.dir + "/rogue-key.pem";
  s.other_ca_file = s.dir + "/other-ca.pem";

  EVP_PKEY* ca_key = new_key(type);
  X509* ca = new_cert(ca_key, "dotgate test CA", true, nullptr, nullptr, 1);
  EVP_PKEY* leaf_key = new_key(type);
  X509* leaf = new_cert(leaf_key, "mx.test", false, ca, ca_key, 2);
  EVP_PKEY* rogue_key = new_key(type);
  X509* rogue = new_cert(rogue_key, "mx.test", false, nullptr, nullptr, 3);
  EVP_PKEY* other_key = new_key(type);
  X509* other = new_cert(other_key, "dotgate other CA", true, nullptr, nullptr, 4);

  write_pem(s.ca_file, ca);
  write_pem(s.cert_file, leaf, ca);
  write_key(s.key_file, leaf_key);
  write_pem(s.rogue_cert_file, rogue);
  write_key(s.rogue_key_file, rogue_key);
  write_pem(s.other_ca_file, other);

  for (X509* x : {ca, leaf, rogue, other}) X509_free(x);
  for (EVP_PKEY* k : {ca_key, leaf_key, rogue_key, other_key}) EVP_PKEY_free(k);
  return s;
}

// The process's EC set, made on first use and removed at exit.
inline const CertificateSet& test_certificates() {
  struct Owned {
    CertificateSet set = make_certificate_set();
    ~Owned() {
      std::error_code ec;
      std::filesystem::remove_all(set.dir, ec);
    }
  };
  static Owned owned;
  return owned.set;
}

}  // namespace dotgate::test
