import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// The HTTP client for the identity platform and Graph of one route.
public enum M365HTTPClient {
    /// An `HTTPClient` that verifies servers against the system roots plus an
    /// optional CA file (a private CA, a TLS-inspecting proxy, the sandbox).
    ///
    /// The caller owns it: `try await client.shutdown()` when done.
    public static func make(caFile: String?, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(15)) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        if let caFile {
            // Fail at configuration time, not at the first request, when the file is unusable.
            _ = try NIOSSLCertificate.fromPEMFile(caFile)
            tls.additionalTrustRoots = [.file(caFile)]
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: connectTimeout, read: .seconds(120))
        // Graph and the token endpoint answer directly; a redirect would be a misconfigured host.
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: group, configuration: configuration)
    }
}
