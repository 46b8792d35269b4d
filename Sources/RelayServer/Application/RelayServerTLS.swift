import Logging
import NIOSSL
import RelayCore
import SMTPNIO
import ServiceLifecycle
import UnixSignals

/// The server certificate and key behind the STARTTLS and implicit TLS
/// listeners, reloadable without a restart.
///
/// A reload reads the files again and swaps the context that *new* handshakes
/// use; a session that already has TLS keeps its own, so nothing in flight is
/// dropped. A reload that fails (an unreadable file, a key that does not match
/// the certificate, a certificate renewed while its key is still being
/// written) keeps the old certificate: the relay never ends up with none.
final class RelayServerTLS: Sendable {
    let settings: RelayConfiguration.TLS
    /// Shared by every TLS listener.
    let context: SMTPServerTLSContext

    init(settings: RelayConfiguration.TLS) throws(RelayStartupError) {
        self.settings = settings
        context = SMTPServerTLSContext(try Self.makeContext(settings))
    }

    /// Reads the certificate and key again; on failure the old ones stay in use.
    func reload() throws(RelayStartupError) {
        context.replace(with: try Self.makeContext(settings))
    }

    /// A server context presenting the configured chain, refusing TLS below
    /// `min_version` (1.2 by default: RFC 8996 retires 1.0 and 1.1).
    static func makeContext(_ tls: RelayConfiguration.TLS) throws(RelayStartupError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile)
        } catch {
            throw RelayStartupError("server.tls: cannot load certificate \(tls.certificateFile): \(error)")
        }
        guard !chain.isEmpty else { throw RelayStartupError("server.tls: no certificate in \(tls.certificateFile)") }
        let keyPEM = try RelaySecrets.read(tls.privateKey)
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
        } catch {
            throw RelayStartupError("server.tls: cannot load private key from \(tls.privateKey): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = tls.minimumVersion == .v1_3 ? .tlsv13 : .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RelayStartupError("server.tls: certificate \(tls.certificateFile) and private key from \(tls.privateKey) do not make a usable pair: \(error)")
        }
    }
}

/// What SIGHUP and ``RelayApplication/reloadTLS()`` do, with the log lines.
struct RelayTLSReloader: Sendable {
    let serverTLS: RelayServerTLS?
    let logger: Logger

    func reload() throws(RelayStartupError) {
        guard let serverTLS else {
            logger.notice("TLS reload requested: no server.tls configured, nothing to reload")
            return
        }
        do {
            try serverTLS.reload()
        } catch {
            logger.error("TLS reload failed; the previous certificate stays in use", metadata: ["error": "\(error)"])
            throw error
        }
        logger.notice("TLS certificate reloaded", metadata: ["certificate": "\(serverTLS.settings.certificateFile)"])
    }

    /// For the signal handler: the error is logged, there is no one to throw to.
    func reloadLogging() {
        try? reload()
    }
}

/// SIGHUP reloads the server certificate and key (``RelayApplication/reloadTLS()``).
///
/// The signal is trapped when this is made, at start, so that a SIGHUP sent
/// once the listeners are up never falls to its default action (terminating the process).
struct RelayReloadSignalService: Service {
    private let signals: UnixSignalsSequence
    private let reload: @Sendable () -> Void

    init(reload: @escaping @Sendable () -> Void) async {
        signals = await UnixSignalsSequence(trapping: .sighup)
        self.reload = reload
    }

    func run() async {
        for await _ in signals.cancelOnGracefulShutdown() {
            reload()
        }
    }
}
