import Foundation
import M365Delivery
import RelayCore
import X509

/// When a credential the relay depends on stops working.
public struct RelayCredentialExpiry: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case certificate, secret, token
    }

    public var what: Kind
    /// What to renew, for a person: `server certificate /etc/m365-relay/relay.crt`,
    /// `route tenant client secret`. Never the secret itself.
    public var name: String
    public var notAfter: Date

    public init(what: Kind, name: String, notAfter: Date) {
        self.what = what
        self.name = name
        self.notAfter = notAfter
    }
}

extension RelayCredentialExpiry {
    /// The expiry dates the configuration makes known: the server's TLS
    /// certificate, each route's client certificate (the earliest `notAfter`
    /// in each PEM file, so an expiring intermediate counts too), each route's
    /// `client_secret_expires`, and each route's static `token_file` or
    /// `token_env` when it is a JWT with an `exp` claim.
    ///
    /// A file that cannot be read or parsed is left out: startup already
    /// refuses an unusable server certificate, and the route's own errors name
    /// the others. Reads files: call it off the hot path (alerts call it once
    /// per check).
    public static func expiries(in configuration: RelayConfiguration) -> [RelayCredentialExpiry] {
        var result: [RelayCredentialExpiry] = []
        if let tls = configuration.server.tls, let notAfter = certificateNotAfter(path: tls.certificateFile) {
            result.append(.init(what: .certificate, name: "server certificate \(tls.certificateFile)", notAfter: notAfter))
        }
        for route in configuration.routes {
            if let path = route.clientCertificateFile, let notAfter = certificateNotAfter(path: path) {
                result.append(.init(what: .certificate, name: "route \(route.name) client certificate \(path)", notAfter: notAfter))
            }
            if route.clientSecret != nil, let notAfter = route.clientSecretExpires {
                result.append(.init(what: .secret, name: "route \(route.name) client secret", notAfter: notAfter))
            }
            if let source = route.token, let token = try? RelaySecrets.read(source), let notAfter = jwtExpiry(token) {
                result.append(.init(what: .token, name: "route \(route.name) token (\(source))", notAfter: notAfter))
            }
        }
        return result
    }

    /// The earliest `notAfter` of the certificates in a PEM file; nil when none parse.
    static func certificateNotAfter(path: String) -> Date? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { return nil }
        return certificateNotAfter(pem: text)
    }

    static func certificateNotAfter(pem text: String) -> Date? {
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        var dates: [Date] = []
        var rest = Substring(text)
        while let start = rest.range(of: begin), let stop = rest[start.upperBound...].range(of: end) {
            if let certificate = try? Certificate(pemEncoded: String(rest[start.lowerBound..<stop.upperBound])) {
                dates.append(certificate.notValidAfter)
            }
            rest = rest[stop.upperBound...]
        }
        return dates.min()
    }

    /// The `exp` claim of a JWT (RFC 7519 §4.1.4); nil for anything else (an opaque token).
    static func jwtExpiry(_ token: String) -> Date? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        guard let payload = M365Base64URL.decode(parts[1]),
              let claims = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
              let exp = claims["exp"] as? NSNumber
        else { return nil }
        return Date(timeIntervalSince1970: exp.doubleValue)
    }
}
