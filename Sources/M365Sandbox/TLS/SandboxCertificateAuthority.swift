import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway certificate authority for the sandbox and for tests: a
/// self-signed CA that issues server certificates for the names and
/// addresses the sandbox listens on.
///
/// Keys are P-256 ECDSA (fast to generate, accepted by every TLS 1.2+ peer);
/// certificates are signed ECDSA with SHA-256. The PEMs load directly into
/// NIOSSL (`NIOSSLCertificate(bytes:format: .pem)`,
/// `NIOSSLPrivateKey(bytes:format: .pem)`): keys are PKCS#8
/// (`BEGIN PRIVATE KEY`).
///
/// Clients trust ``certificatePEM`` as their only root; nothing here is
/// meant for production.
/// - SeeAlso: RFC 5280 §4.2.1 (the extensions), CA/Browser Forum baseline
///   requirements (825 days, the longest validity clients still accept)
public struct SandboxCertificateAuthority: Sendable, CustomStringConvertible {
    /// The CA certificate.
    public let certificate: Certificate
    private let privateKey: P256.Signing.PrivateKey

    /// Default validity of issued and CA certificates.
    public static let defaultValidity: TimeInterval = 825 * 24 * 3600

    /// Creates a new CA with a fresh key.
    ///
    /// - Parameters:
    ///   - commonName: subject CN of the CA certificate.
    ///   - validity: how long from `now` the CA certificate is valid.
    ///   - now: the current time; `notBefore` is one hour earlier, to tolerate clock skew.
    public init(
        commonName: String = "m365-relay sandbox CA",
        validity: TimeInterval = SandboxCertificateAuthority.defaultValidity,
        now: Date = Date()
    ) throws {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let name = try DistinguishedName {
            OrganizationName("m365-relay sandbox")
            CommonName(commonName)
        }
        let keyIdentifier = Self.keyIdentifier(of: publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(keyIdentifier: keyIdentifier)
        }
        self.certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(key))
        self.privateKey = key
    }

    /// Loads a CA saved earlier with ``certificatePEM`` and ``privateKeyPEM``,
    /// so that clients configured to trust it keep trusting reissued leaves.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        let certificate = try Certificate(pemEncoded: certificatePEM)
        let key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        guard P256.Signing.PublicKey(certificate.publicKey)?.rawRepresentation == key.publicKey.rawRepresentation else {
            throw SandboxCertificateError("the CA private key does not match the CA certificate")
        }
        self.certificate = certificate
        self.privateKey = key
    }

    /// The CA certificate as PEM: what clients trust.
    public var certificatePEM: String {
        // Serialising a certificate we hold in memory cannot fail.
        (try? certificate.serializeAsPEM().pemString) ?? ""
    }

    /// The CA key as PKCS#8 PEM. Keep it to reload the CA; never log it.
    public var privateKeyPEM: String { privateKey.pemRepresentation }

    public var description: String { "SandboxCertificateAuthority(\(certificate.subject))" }

    /// Writes `ca.pem` (0644) and `ca.key` (0600) into `directory`, to reload
    /// the CA later with ``init(certificatePEM:privateKeyPEM:)``.
    @discardableResult
    public func write(to directory: String) throws -> (certificate: String, privateKey: String) {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let certificatePath = (directory as NSString).appendingPathComponent("ca.pem")
        let keyPath = (directory as NSString).appendingPathComponent("ca.key")
        try sandboxWriteFile(certificatePath, certificatePEM, mode: 0o644)
        try sandboxWriteFile(keyPath, privateKeyPEM, mode: 0o600)
        return (certificatePath, keyPath)
    }

    /// Issues a server certificate.
    ///
    /// - Parameters:
    ///   - dnsNames: DNS subject alternative names, e.g. `["localhost"]`; the first is also the CN.
    ///   - ipAddresses: IP subject alternative names as text (IPv4 or IPv6).
    ///   - validity: how long from `now` the certificate is valid.
    ///   - now: the current time; `notBefore` is one hour earlier.
    public func issueServerCertificate(
        dnsNames: [String] = ["localhost"],
        ipAddresses: [String] = ["127.0.0.1", "::1"],
        validity: TimeInterval = SandboxCertificateAuthority.defaultValidity,
        now: Date = Date()
    ) throws -> SandboxServerCertificate {
        guard !dnsNames.isEmpty || !ipAddresses.isEmpty else {
            throw SandboxCertificateError("a server certificate needs at least one DNS name or IP address")
        }
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.ipAddressBytes(address) else {
                throw SandboxCertificateError("not an IP address: \(address)")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        return try issueLeaf(
            commonName: dnsNames.first ?? ipAddresses[0], usage: .serverAuth, alternativeNames: names, validity: validity, now: now)
    }

    /// Issues a TLS client certificate, as a relay presents to a
    /// certificate-based inbound connector: subject CN and a DNS SAN of
    /// `commonName`, extended key usage clientAuth.
    public func issueClientCertificate(
        commonName: String,
        validity: TimeInterval = SandboxCertificateAuthority.defaultValidity,
        now: Date = Date()
    ) throws -> SandboxServerCertificate {
        try issueLeaf(commonName: commonName, usage: .clientAuth, alternativeNames: [.dnsName(commonName)], validity: validity, now: now)
    }

    /// A P-256 leaf signed by this authority, for one extended key usage.
    private func issueLeaf(
        commonName: String, usage: ExtendedKeyUsage.Usage, alternativeNames: [GeneralName], validity: TimeInterval, now: Date
    ) throws -> SandboxServerCertificate {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName {
            OrganizationName("m365-relay sandbox")
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([usage])
            SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: publicKey))
            AuthorityKeyIdentifier(keyIdentifier: Self.keyIdentifier(of: certificate.publicKey))
            SubjectAlternativeNames(alternativeNames)
        }
        let leaf = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(validity),
            issuer: certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(privateKey))
        return SandboxServerCertificate(
            certificate: leaf,
            certificatePEM: try leaf.serializeAsPEM().pemString,
            privateKeyPEM: key.pemRepresentation,
            caCertificatePEM: try certificate.serializeAsPEM().pemString)
    }

    /// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits.
    private static func keyIdentifier(of key: Certificate.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(Insecure.SHA1.hash(data: Array(key.subjectPublicKeyInfoBytes)))
    }

    /// The 4 or 16 network-order bytes of an IPv4 or IPv6 address, nil when the text is neither.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// A server certificate with its key and the CA that issued it, as PEM.
public struct SandboxServerCertificate: Sendable, CustomStringConvertible {
    public let certificate: Certificate
    /// The server certificate (leaf).
    public let certificatePEM: String
    /// The server's PKCS#8 key. Secret: never shown by `description`.
    public let privateKeyPEM: String
    /// The issuing CA's certificate: what clients must trust.
    public let caCertificatePEM: String

    /// Leaf then CA: a full chain for servers that send it.
    public var chainPEM: String { certificatePEM + caCertificatePEM }

    public var description: String {
        "SandboxServerCertificate(\(certificate.subject), privateKey: <redacted>)"
    }

    /// Paths of the files written by ``write(to:)``.
    public struct Files: Hashable, Sendable {
        public var caCertificate: String
        public var certificate: String
        public var privateKey: String
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `directory` (created
    /// if missing, mode 0700). The key file is created with mode 0600 and never
    /// exists with wider permissions; certificates get 0644.
    @discardableResult
    public func write(to directory: String) throws -> Files {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let files = Files(
            caCertificate: (directory as NSString).appendingPathComponent("ca.pem"),
            certificate: (directory as NSString).appendingPathComponent("server.pem"),
            privateKey: (directory as NSString).appendingPathComponent("server.key"))
        try sandboxWriteFile(files.caCertificate, caCertificatePEM, mode: 0o644)
        try sandboxWriteFile(files.certificate, certificatePEM, mode: 0o644)
        try sandboxWriteFile(files.privateKey, privateKeyPEM, mode: 0o600)
        return files
    }
}

/// Why a sandbox certificate could not be made, loaded or written.
public struct SandboxCertificateError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Writes `contents` to `path` with exactly `mode`, replacing any existing file.
///
/// The file is created with `mode` by `open(2)` and `fchmod`ed again in
/// case it already existed, so a key is never readable by others, not even
/// for a moment.
func sandboxWriteFile(_ path: String, _ contents: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw SandboxCertificateError("cannot open \(path): errno \(errno)") }
    defer { close(fd) }
    guard fchmod(fd, mode) == 0 else { throw SandboxCertificateError("cannot chmod \(path): errno \(errno)") }
    var bytes = Array(contents.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            throw SandboxCertificateError("cannot write \(path): errno \(errno)")
        }
        bytes = bytes.dropFirst(written)
    }
}
