import Crypto
import Foundation
import _CryptoExtras

/// A DKIM private key: RSA (2048 bits or more) or Ed25519; its type picks the algorithm.
///
/// Never printed: `description` names the algorithm and size only.
/// - SeeAlso: RFC 6376 §3.3 (rsa-sha256), RFC 8463 (ed25519-sha256), RFC 8301 §3.2 (RSA keys of at least 1024 bits, 2048 recommended)
public struct DKIMSigningKey: Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable, Hashable {
        case rsaSHA256 = "rsa-sha256"
        case ed25519SHA256 = "ed25519-sha256"
    }

    enum Backing: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    /// Shortest RSA modulus accepted. RFC 8301 allows 1024; the relay asks
    /// for what it recommends and what Microsoft 365 generates.
    public static let minimumRSABits = 2048

    let backing: Backing

    public var algorithm: Algorithm {
        switch backing {
        case .rsa: .rsaSHA256
        case .ed25519: .ed25519SHA256
        }
    }

    public var description: String {
        switch backing {
        case .rsa(let key): "DKIM key rsa-sha256 (\(key.keySizeInBits) bits)"
        case .ed25519: "DKIM key ed25519-sha256"
        }
    }

    public init(rsa key: _RSA.Signing.PrivateKey) throws(DKIMError) {
        guard key.keySizeInBits >= Self.minimumRSABits else {
            throw DKIMError(.keyTooSmall, "an RSA key of \(key.keySizeInBits) bits; DKIM signing needs \(Self.minimumRSABits) bits or more")
        }
        backing = .rsa(key)
    }

    public init(ed25519 key: Curve25519.Signing.PrivateKey) {
        backing = .ed25519(key)
    }

    /// Reads a PEM private key: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`), Ed25519 as PKCS#8 (`PRIVATE KEY`).
    ///
    /// Errors say what is wrong with the key, never what it contains.
    public init(pemRepresentation pem: String) throws(DKIMError) {
        guard pem.contains("-----BEGIN ") else {
            throw DKIMError(.unreadableKey, "not a PEM document (no -----BEGIN line)")
        }
        if pem.contains("ENCRYPTED") {
            throw DKIMError(.unreadableKey, "an encrypted private key; DKIM keys must be stored unencrypted (protect the file instead)")
        }
        // Ed25519 first: an RSA parser shown a PKCS#8 Ed25519 key just fails.
        if pem.contains("-----BEGIN PRIVATE KEY-----"), Self.namesEd25519(pem), let key = try? Curve25519.Signing.PrivateKey(pemRepresentation: pem) {
            self.init(ed25519: key)
            return
        }
        // `unsafePEMRepresentation` reads keys from 1024 bits, so that a short key is named as such rather than as unreadable.
        let rsa: _RSA.Signing.PrivateKey
        do {
            rsa = try _RSA.Signing.PrivateKey(unsafePEMRepresentation: pem)
        } catch {
            throw DKIMError(.unreadableKey, "not an RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key in PEM")
        }
        try self.init(rsa: rsa)
    }

    /// Whether a PKCS#8 PEM names the Ed25519 algorithm (OID 1.3.101.112):
    /// the PEM reader takes any 32-octet key, X25519's too.
    static func namesEd25519(_ pem: String) -> Bool {
        let body = pem.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("-----") }.joined()
        guard let der = Data(base64Encoded: body) else { return false }
        return [UInt8](der).firstRange(of: [0x06, 0x03, 0x2B, 0x65, 0x70]) != nil
    }

    /// Signs the canonical header data: RSASSA-PKCS1-v1_5 over its SHA-256
    /// (rsa-sha256), or Ed25519 over its SHA-256 (ed25519-sha256, RFC 8463 §3).
    public func sign(_ data: [UInt8]) throws(DKIMError) -> [UInt8] {
        let digest = SHA256.hash(data: data)
        do {
            switch backing {
            case .rsa(let key):
                return Array(try key.signature(for: digest, padding: .insecurePKCS1v1_5).rawRepresentation)
            case .ed25519(let key):
                return Array(try key.signature(for: Array(digest)))
            }
        } catch {
            throw DKIMError(.signingFailed, "the \(algorithm.rawValue) signature could not be computed")
        }
    }

    /// The public key as DKIM publishes it: `p=` of the TXT record
    /// (SubjectPublicKeyInfo DER for RSA, the 32 raw octets for Ed25519), base64.
    public var publicKeyBase64: String {
        switch backing {
        case .rsa(let key): DKIMBase64.encode(Array(key.publicKey.derRepresentation))
        case .ed25519(let key): DKIMBase64.encode(Array(key.publicKey.rawRepresentation))
        }
    }

    /// The TXT record to publish at `selector._domainkey.domain`.
    /// - SeeAlso: RFC 6376 §3.6.1
    public var dnsRecord: String {
        "v=DKIM1; k=\(algorithm == .rsaSHA256 ? "rsa" : "ed25519"); p=\(publicKeyBase64)"
    }
}

/// Base64 without Foundation (RelayCore stays small), for `bh=`, `b=` and `p=`.
enum DKIMBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 2 < bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], alphabet[Int(value & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let value = UInt32(bytes[index]) << 16
            output += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], 61, 61]
        } else if rest == 2 {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            output += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], 61]
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// Why a DKIM key or signature could not be made. No key material in either description.
public struct DKIMError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, RawRepresentable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let unreadableKey = Code(rawValue: "unreadable-key")
        public static let keyTooSmall = Code(rawValue: "key-too-small")
        public static let signingFailed = Code(rawValue: "signing-failed")
        public static let headerSectionIncomplete = Code(rawValue: "header-section-incomplete")
    }

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { detail }
}
