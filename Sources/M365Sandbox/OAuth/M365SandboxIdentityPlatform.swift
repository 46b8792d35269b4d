import Crypto
import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import X509
import _CryptoExtras

/// An access token the sandbox issued: opaque, remembered with its app, scope and expiry.
struct M365SandboxIssuedToken: Sendable {
    var app: M365SandboxConfiguration.App
    var resource: M365SandboxIdentityPlatform.Resource
    var expiresAt: Date
}

/// The Microsoft identity platform's client credentials grant
/// (`POST /{tenant}/oauth2/v2.0/token`), with Entra ID's error codes.
///
/// - SeeAlso: RFC 6749 §4.4 (client credentials), RFC 7523 §2.2 (JWT client
///   assertions), RFC 7515 (JWS), Microsoft's "certificate credentials" page.
final class M365SandboxIdentityPlatform: Sendable {
    /// What a token is for: the scope's resource.
    enum Resource: String, Sendable {
        case outlook, graph
    }

    /// A token endpoint reply: status and JSON body.
    struct Reply: Sendable {
        var status: Int
        var body: [String: any Sendable]
    }

    private struct RegisteredCertificate: Sendable {
        var sha256Thumbprint: String
        var sha1Thumbprint: String
        var publicKey: _RSA.Signing.PublicKey
    }

    private let configuration: M365SandboxConfiguration
    private let certificates: [String: RegisteredCertificate]
    private let tokens = NIOLockedValueBox([String: M365SandboxIssuedToken]())
    private let issuedCount = NIOLockedValueBox(0)

    init(configuration: M365SandboxConfiguration) throws {
        self.configuration = configuration
        var certificates: [String: RegisteredCertificate] = [:]
        for app in configuration.apps {
            guard let pem = app.certificatePEM else { continue }
            let certificate = try Certificate(pemEncoded: pem)
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            let der = serializer.serializedBytes
            guard let key = _RSA.Signing.PublicKey(certificate.publicKey) else {
                throw SandboxCertificateError("app \(app.clientID): the certificate's key is not RSA (client assertions are RS256)")
            }
            certificates[app.clientID.lowercased()] = RegisteredCertificate(
                sha256Thumbprint: Base64URL.encode(Array(SHA256.hash(data: der))),
                sha1Thumbprint: Base64URL.encode(Array(Insecure.SHA1.hash(data: der))),
                publicKey: key)
        }
        self.certificates = certificates
    }

    /// Tokens issued so far.
    var tokensIssued: Int { issuedCount.withLockedValue { $0 } }

    /// The token's record when it is one the sandbox issued (expired or not).
    func issuedToken(_ token: String) -> M365SandboxIssuedToken? {
        tokens.withLockedValue { $0[token] }
    }

    /// Answers a token request.
    ///
    /// - Parameters:
    ///   - tenant: the `{tenant}` path segment.
    ///   - form: the decoded form fields.
    ///   - endpointURLs: the URLs this request may be addressed as (`aud` of an assertion).
    ///   - graphScopes: the scopes that mean Graph, besides `https://graph.microsoft.com/.default`.
    func token(tenant: String, form: [String: String], endpointURLs: Set<String>, graphScopes: Set<String>, now: Date = Date()) -> Reply {
        guard tenant.caseInsensitiveCompare(configuration.tenantID) == .orderedSame
            || tenant.caseInsensitiveCompare(configuration.tenantGUID) == .orderedSame else {
            return error(400, "invalid_request", 90002, "Tenant '\(tenant)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", now)
        }
        guard form["grant_type"] == "client_credentials" else {
            return error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '\(form["grant_type"] ?? "")'.", now)
        }
        guard let clientID = form["client_id"], !clientID.isEmpty else {
            return error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.", now)
        }
        guard let app = configuration.apps.first(where: { $0.clientID.caseInsensitiveCompare(clientID) == .orderedSame }) else {
            return error(400, "unauthorized_client", 700016, "Application with identifier '\(clientID)' was not found in the directory '\(configuration.tenantID)'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", now)
        }
        let scope = form["scope"] ?? ""
        let resource: Resource
        switch scope {
        case "https://outlook.office365.com/.default", "https://outlook.office.com/.default": resource = .outlook
        case "https://graph.microsoft.com/.default": resource = .graph
        case _ where graphScopes.contains(scope): resource = .graph
        default:
            return error(400, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope \(scope) is not valid.", now)
        }
        if let secret = form["client_secret"] {
            guard let expected = app.secret, Self.constantTimeEqual(secret, expected) else {
                return error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(app.clientID)'.", now)
            }
            if let expires = app.secretExpires, expires <= now {
                return error(401, "invalid_client", 7000222, "The provided client secret keys for app '\(app.clientID)' are expired. Visit the Azure portal to create new keys for your app.", now)
            }
        } else if let assertion = form["client_assertion"] {
            guard form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" else {
                return error(400, "invalid_request", 50027, "Invalid JWT token. The client_assertion_type is not valid.", now)
            }
            if let failure = verifyAssertion(assertion, app: app, endpointURLs: endpointURLs, now: now) { return failure }
        } else {
            return error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", now)
        }
        let token = Self.randomToken()
        let lifetime = configuration.tokenLifetime
        tokens.withLockedValue { tokens in
            // Forget long-expired tokens so the table stays small.
            if tokens.count > 10_000 { tokens = tokens.filter { $0.value.expiresAt > now.addingTimeInterval(-3600) } }
            tokens[token] = M365SandboxIssuedToken(app: app, resource: resource, expiresAt: now.addingTimeInterval(lifetime))
        }
        issuedCount.withLockedValue { $0 += 1 }
        let seconds = Int(lifetime.rounded(.down))
        return Reply(status: 200, body: ["token_type": "Bearer", "expires_in": seconds, "ext_expires_in": seconds, "access_token": token])
    }

    /// Checks a JWT client assertion; nil when it is good, else the error reply.
    private func verifyAssertion(_ assertion: String, app: M365SandboxConfiguration.App, endpointURLs: Set<String>, now: Date) -> Reply? {
        let invalidSignature = { (why: String) in
            self.error(401, "invalid_client", 700027, "Client assertion failed signature validation. \(why)", now)
        }
        let parts = assertion.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerBytes = Base64URL.decode(parts[0]), let claimBytes = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2]),
              let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
              let claims = try? JSONSerialization.jsonObject(with: Data(claimBytes)) as? [String: Any] else {
            return error(400, "invalid_request", 50027, "JWT token is invalid or malformed.", now)
        }
        guard header["alg"] as? String == "RS256" else { return invalidSignature("The algorithm must be RS256.") }
        guard let registered = certificates[app.clientID.lowercased()] else {
            return invalidSignature("No certificate is registered on application '\(app.clientID)'.")
        }
        let thumbprintMatches: Bool
        if let s256 = header["x5t#S256"] as? String {
            thumbprintMatches = s256 == registered.sha256Thumbprint
        } else if let sha1 = header["x5t"] as? String {
            thumbprintMatches = sha1 == registered.sha1Thumbprint
        } else {
            thumbprintMatches = false
        }
        guard thumbprintMatches else {
            return error(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found.]", now)
        }
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        guard registered.publicKey.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5) else {
            return invalidSignature("The signature does not verify with the registered certificate.")
        }
        guard let audience = claims["aud"] as? String, endpointURLs.contains(audience) else {
            return error(401, "invalid_client", 700027, "Client assertion contains an invalid audience (aud claim).", now)
        }
        guard (claims["iss"] as? String)?.caseInsensitiveCompare(app.clientID) == .orderedSame,
              (claims["sub"] as? String)?.caseInsensitiveCompare(app.clientID) == .orderedSame else {
            return error(401, "invalid_client", 700027, "Client assertion contains an invalid issuer or subject: both must be the client id.", now)
        }
        guard claims["jti"] is String else {
            return error(400, "invalid_request", 50027, "JWT token is missing the jti claim.", now)
        }
        guard let notBefore = (claims["nbf"] as? NSNumber)?.doubleValue, let expires = (claims["exp"] as? NSNumber)?.doubleValue else {
            return error(401, "invalid_client", 700024, "Client assertion is not within its valid time range: nbf and exp are required.", now)
        }
        let skew = configuration.assertionClockSkew
        let current = now.timeIntervalSince1970
        guard current + skew >= notBefore, current - skew < expires else {
            return error(401, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: \(Self.timestamp(now)), assertion valid from \(Self.timestamp(Date(timeIntervalSince1970: notBefore))), expiry time of assertion \(Self.timestamp(Date(timeIntervalSince1970: expires))).", now)
        }
        return nil
    }

    /// Entra ID's error body: the AADSTS code leads the description, followed by the trace ids.
    private func error(_ status: Int, _ error: String, _ code: Int, _ description: String, _ now: Date) -> Reply {
        let trace = UUID().uuidString.lowercased(), correlation = UUID().uuidString.lowercased()
        let stamp = Self.timestamp(now)
        return Reply(status: status, body: [
            "error": error,
            "error_description": "AADSTS\(code): \(description) Trace ID: \(trace) Correlation ID: \(correlation) Timestamp: \(stamp)",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": "https://login.microsoftonline.com/error?code=\(code)",
        ])
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        return formatter.string(from: date)
    }

    /// 48 random bytes, base64url: opaque like Microsoft's (which are JWTs the client must not parse).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<48).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    private static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Base64url without padding (RFC 4648 §5), as JWTs use it.
enum Base64URL {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }
}
