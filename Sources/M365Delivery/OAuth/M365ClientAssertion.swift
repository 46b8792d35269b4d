import Crypto
import Foundation
import RelayCore
import SMTPCore
import X509
import _CryptoExtras

/// A certificate credential of an app registration: the certificate uploaded
/// to Entra ID and its RSA key, which signs client assertions.
///
/// Parsing and checking happen once, at configuration time: a key that does
/// not belong to the certificate fails here, not at the first delivery.
/// - SeeAlso: Microsoft identity platform, "certificate credentials" (client assertion format)
public struct M365CertificateCredential: Sendable, CustomStringConvertible {
    public let certificate: Certificate
    /// The certificate's DER octets, as uploaded: the thumbprint covers exactly these.
    public let certificateDER: [UInt8]
    let privateKey: _RSA.Signing.PrivateKey

    /// Accepts the key as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`) PEM.
    public init(certificatePEM: String, privateKeyPEM: SASLSecret) throws(M365TokenError) {
        let certificate: Certificate
        let der: [UInt8]
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
            der = try certificate.serializeAsPEM().derBytes
        } catch {
            throw Self.invalid("the certificate is not a PEM X.509 certificate")
        }
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: privateKeyPEM.unredacted)
        } catch {
            throw Self.invalid("the private key is not an RSA key of 2048 bits or more in PKCS#1 or PKCS#8 PEM")
        }
        guard let certificateKey = _RSA.Signing.PublicKey(certificate.publicKey),
              certificateKey.derRepresentation == key.publicKey.derRepresentation
        else {
            throw Self.invalid("the private key does not belong to the certificate (or the certificate's key is not RSA)")
        }
        self.certificate = certificate
        self.certificateDER = der
        self.privateKey = key
    }

    private static func invalid(_ detail: String) -> M365TokenError {
        M365TokenError(.invalidCredential, failure: M365TokenFailure(status: nil, error: "invalid_certificate_credential", detail: detail))
    }

    /// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
    public var thumbprintSHA256: String {
        M365Base64URL.encode(Array(SHA256.hash(data: certificateDER)))
    }

    /// The key stays out of every description.
    public var description: String { "M365CertificateCredential(\(certificate.subject), x5t#S256: \(thumbprintSHA256))" }
}

/// The signed JWT an app presents instead of a secret (`client_assertion`).
///
/// Header `{"alg":"RS256","typ":"JWT","x5t#S256":...}`; claims `aud` (the
/// token endpoint), `iss` = `sub` = the client id, a fresh `jti`, `nbf` and
/// `iat` now, `exp` ten minutes later. RS256 is RSASSA-PKCS1-v1_5 with SHA-256.
/// - SeeAlso: RFC 7519 (JWT), RFC 7515 §4.1.8 (`x5t#S256`), RFC 7523 §3 (client assertions)
public enum M365ClientAssertion {
    /// How long an assertion is valid; Microsoft accepts up to ten minutes' clock skew anyway.
    public static let lifetime: TimeInterval = 600

    public static func make(credential: M365CertificateCredential, clientID: String, audience: String, now: Date, id: UUID = UUID()) throws -> SASLSecret {
        let header = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t#S256\":\(json(credential.thumbprintSHA256))}"
        let issued = Int(now.timeIntervalSince1970)
        let claims = "{\"aud\":\(json(audience)),\"iss\":\(json(clientID)),\"sub\":\(json(clientID)),\"jti\":\(json(id.uuidString.lowercased())),\"nbf\":\(issued),\"iat\":\(issued),\"exp\":\(issued + Int(lifetime))}"
        let signingInput = M365Base64URL.encode(Array(header.utf8)) + "." + M365Base64URL.encode(Array(claims.utf8))
        let signature = try credential.privateKey.signature(for: Array(signingInput.utf8), padding: .insecurePKCS1v1_5)
        return SASLSecret(signingInput + "." + M365Base64URL.encode(Array(signature.rawRepresentation)))
    }

    /// A JSON string literal.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// base64url without padding.
/// - SeeAlso: RFC 4648 §5, RFC 7515 §2
public enum M365Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }
}
