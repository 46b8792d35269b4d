import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL
import RelayCore
import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension M365ConnectionFailure {
    /// How a connection to Microsoft 365 failed, from the error NIO, NIOSSL,
    /// AsyncHTTPClient or the SMTP client threw; nil when the error is not a
    /// connection failure (a reply, a protocol error).
    public init?(classifying error: any Error) {
        switch error {
        case let error as NIOSSLError:
            // BoringSSL reports a chain it cannot verify as CERTIFICATE_VERIFY_FAILED inside handshakeFailed.
            self = "\(error)".contains("CERTIFICATE_VERIFY_FAILED") ? .untrustedCertificate : .tlsHandshakeFailed
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            self = .untrustedCertificate
        case is NIOSSLExtraError:
            self = .tlsHandshakeFailed
        case let error as NIOConnectionError:
            if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil {
                self = .dnsFailure
            } else if let first = error.connectionErrors.first {
                self = M365ConnectionFailure(classifying: first.error) ?? .connectionRefused
            } else {
                self = .connectionRefused
            }
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED, EHOSTUNREACH, ENETUNREACH: self = .connectionRefused
            case ETIMEDOUT: self = .timeout
            default: self = .connectionReset
            }
        case let error as ChannelError:
            switch error {
            case .connectTimeout: self = .timeout
            default: self = .connectionReset
            }
        case is ChannelPipelineError:
            // The peer closed while the connection's handlers were being set up.
            self = .connectionReset
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout, .readTimeout, .writeTimeout, .deadlineExceeded, .getConnectionFromPoolTimeout: self = .timeout
            case .tlsHandshakeTimeout: self = .tlsHandshakeFailed
            case .remoteConnectionClosed, .uncleanShutdown: self = .connectionReset
            default: return nil
            }
        case let error as SMTPClientError:
            // The reply timer of SMTPClientConnection; a reply cut short by a close.
            if error.code == .unexpectedEvent, error.detail?.hasPrefix("no reply within") == true {
                self = .timeout
            } else if error.code == .truncatedReply {
                self = .connectionReset
            } else {
                return nil
            }
        default:
            let text = "\(error)"
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                self = .untrustedCertificate
            } else if text.localizedLowercaseContains("connection refused") {
                self = .connectionRefused
            } else if text.localizedLowercaseContains("connection reset") {
                self = .connectionReset
            } else {
                return nil
            }
        }
    }
}

extension String {
    fileprivate func localizedLowercaseContains(_ words: String) -> Bool {
        lowercased().contains(words)
    }
}
