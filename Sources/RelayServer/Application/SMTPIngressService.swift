import Logging
import NIOCore
import SMTPNIO
import ServiceLifecycle

/// The SMTP listeners as a Service: on graceful shutdown they stop
/// accepting, idle sessions get `421`, messages in flight finish.
final class SMTPIngressService: Service, Sendable {
    private let server: SMTPServer
    private let gracePeriod: TimeAmount

    init(server: SMTPServer, gracePeriod: TimeAmount = .seconds(60)) {
        self.server = server
        self.gracePeriod = gracePeriod
    }

    func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown(gracePeriod: gracePeriod)
    }
}
