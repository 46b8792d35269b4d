import Foundation
import RelayCore
import SMTPCore

/// An OAuth access token issued by the Microsoft identity platform for one scope.
///
/// The token is a bearer credential: every way of printing this value shows
/// `<redacted>` and the expiry only; ``value``'s ``SASLSecret/unredacted`` is
/// the one way to the text, for the code that puts it on the wire.
public struct M365AccessToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let value: SASLSecret
    /// The scope it was issued for, e.g. `https://outlook.office365.com/.default`.
    public let scope: String
    /// When the provider received it (its clock).
    public let issuedAt: Date
    /// `issuedAt + expires_in`.
    public let expiresAt: Date

    public init(value: SASLSecret, scope: String, issuedAt: Date, expiresAt: Date) {
        self.value = value
        self.scope = scope
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }

    /// Seconds between issue and expiry.
    public var lifetime: TimeInterval { expiresAt.timeIntervalSince(issuedAt) }

    public var description: String { "M365AccessToken(<redacted>, scope: \(scope), expires: \(expiresAt))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["scope": scope, "expiresAt": expiresAt], displayStyle: .struct) }
}

/// Why no token could be had: the endpoint refused, could not be reached, or
/// answered something that is not a token.
///
/// `description` carries the status, the `AADSTS` code and what it means;
/// never the client secret, the assertion or a token. `debugDescription`
/// adds Microsoft's description (without its trace and correlation ids).
public struct M365TokenError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case refused, unreachable, invalidResponse, invalidCredential
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The endpoint answered with an OAuth error (bad secret, unknown app...).
        public static let refused = Code(.refused)
        /// No answer: connection, TLS or timeout.
        public static let unreachable = Code(.unreachable)
        /// A success status without a usable token, or an error body that is not JSON.
        public static let invalidResponse = Code(.invalidResponse)
        /// The configured certificate or key cannot be used (found before any request).
        public static let invalidCredential = Code(.invalidCredential)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What the relay's classification reads (`M365Reply.tokenRefused`).
    public var failure: M365TokenFailure
    /// How the connection failed, for ``Code-swift.struct/unreachable``.
    public var connectionFailure: M365ConnectionFailure?

    public init(_ code: Code, failure: M365TokenFailure, connectionFailure: M365ConnectionFailure? = nil) {
        self.code = code
        self.failure = failure
        self.connectionFailure = connectionFailure
    }

    public var description: String {
        "Token request \(code): \(failure): \(failure.meaning)"
    }

    public var debugDescription: String {
        failure.detail.isEmpty ? description : "\(description) (\(failure.detail))"
    }
}
