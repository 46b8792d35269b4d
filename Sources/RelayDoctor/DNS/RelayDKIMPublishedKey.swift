import Crypto
import Foundation
import RelayCore
import _CryptoExtras

/// The public half of one of the relay's DKIM keys: what
/// `<selector>._domainkey.<domain>` must publish for receivers to verify the
/// relay's signatures.
///
/// Derived from the configured private key, so it holds nothing secret.
/// - SeeAlso: RFC 6376 §3.6.1 (the key record), RFC 8463 §4.2 (Ed25519 keys)
public struct RelayDKIMPublishedKey: Sendable, Hashable {
    /// `k=` of the key record.
    public enum Algorithm: String, Sendable, Hashable, CaseIterable {
        case rsa
        case ed25519
    }

    /// Lower-cased.
    public var domain: String
    public var selector: String
    /// RSA: the SubjectPublicKeyInfo DER; Ed25519: the 32 raw octets.
    public var publicKey: [UInt8]
    public var algorithm: Algorithm

    public init(domain: String, selector: String, publicKey: [UInt8], algorithm: Algorithm) {
        self.domain = domain.lowercased()
        self.selector = selector
        self.publicKey = publicKey
        self.algorithm = algorithm
    }

    /// Derives the public key from a PEM private key, read the way the signer
    /// reads it (``DKIMSigningKey``): RSA of 2048 bits or more in PKCS#1 or
    /// PKCS#8, or Ed25519 in PKCS#8. The error names what is wrong, never the key.
    public init(domain: String, selector: String, privateKeyPEM: String) throws(DKIMError) {
        let signingKey = try DKIMSigningKey(pemRepresentation: privateKeyPEM)
        // DKIMSigningKey keeps its key private and already writes `p=`: decoding that is the one derivation.
        guard let publicKey = Data(base64Encoded: signingKey.publicKeyBase64) else {
            throw DKIMError(.unreadableKey, "the public key could not be derived")
        }
        self.init(
            domain: domain, selector: selector, publicKey: Array(publicKey),
            algorithm: signingKey.algorithm == .rsaSHA256 ? .rsa : .ed25519)
    }

    /// The key of a `dkim` entry, given the content of its `private_key_file` or `private_key_env`.
    public init(entry: RelayConfiguration.DKIM, privateKeyPEM: String) throws(DKIMError) {
        try self.init(domain: entry.domain, selector: entry.selector, privateKeyPEM: privateKeyPEM)
    }

    /// `<selector>._domainkey.<domain>`.
    public var recordName: String { "\(selector)._domainkey.\(domain)" }

    /// `p=`: the public key in base64.
    public var publicKeyBase64: String { Data(publicKey).base64EncodedString() }

    /// The key record's text: `v=DKIM1; k=rsa; p=...`.
    public var recordText: String { "v=DKIM1; k=\(algorithm.rawValue); p=\(publicKeyBase64)" }

    /// The record text as TXT character-strings of at most 255 octets each
    /// (RFC 1035 §3.3.14): a 2048-bit RSA key does not fit in one.
    public var recordStrings: [String] {
        var strings: [String] = []
        var rest = Substring(recordText)
        while !rest.isEmpty {
            strings.append(String(rest.prefix(255)))
            rest = rest.dropFirst(255)
        }
        return strings
    }

    /// The record as a zone file line, strings quoted:
    /// `relay._domainkey.contoso.com. IN TXT "v=DKIM1; k=rsa; p=MIIB..." "..."`.
    public var zoneFileLine: String {
        "\(recordName). IN TXT " + recordStrings.map { "\"\($0)\"" }.joined(separator: " ")
    }

    /// Whether a published `p=` (base64, spaces allowed) is this key.
    ///
    /// RSA keys are compared as keys, so that a record carrying the bare
    /// PKCS#1 `RSAPublicKey` (which RFC 6376 §3.6.1's wording suggests and some
    /// tools publish) matches the SubjectPublicKeyInfo the relay derives.
    public func matches(publishedBase64 text: String) -> Bool {
        let compact = text.filter { !$0.isWhitespace }
        guard let published = Data(base64Encoded: compact) else { return false }
        if Array(published) == publicKey { return true }
        guard algorithm == .rsa,
              let theirs = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: published),
              let ours = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: publicKey)
        else { return false }
        return theirs.derRepresentation == ours.derRepresentation
    }
}
