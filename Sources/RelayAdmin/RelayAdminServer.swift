import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import RelayCore
import ServiceLifecycle
import Synchronization

/// Why the admin server cannot run; the relay exits with code 3 and this text.
public struct RelayAdminServerError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// The admin HTTP server: the API, `/metrics`, health and the dashboard.
///
/// ``start()`` binds the port (so that the relay can fail with a reason
/// before it accepts mail); ``run()`` then serves until graceful shutdown.
/// Bound to loopback it needs no token; bound to any other address it refuses
/// to exist without one, since the API can delete mail.
public final class RelayAdminServer: Service, Sendable {
    public let address: RelayEndpoint
    private let token: String?
    private let backend: any RelayAdminBackend
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let clock: @Sendable () -> Date
    private let state = Mutex(State.idle)

    private enum State {
        case idle
        case starting
        case running(port: Int, group: ServiceGroup, task: Task<Void, any Error>)
        case stopped
    }

    /// - Parameter address: host and port; port 0 picks a free port (tests), see ``port``.
    /// - Parameter token: the value of `admin.token_file`; required unless `address` is loopback.
    /// - Parameter clock: "now" for the API and the dashboard.
    /// - Throws: ``RelayAdminServerError`` when the address is not loopback and there is no token.
    public init(
        address: RelayEndpoint, token: String?, backend: any RelayAdminBackend, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, clock: @escaping @Sendable () -> Date = Date.init
    ) throws(RelayAdminServerError) {
        let token = token.flatMap { $0.isEmpty ? nil : $0 }
        if token == nil && !address.isLoopback {
            throw RelayAdminServerError(
                "admin: \(address) is not a loopback address, so the admin API needs a token: set admin.token_file (or admin.token_env), or bind admin.address to 127.0.0.1")
        }
        self.address = address
        self.token = token
        self.backend = backend
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.clock = clock
    }

    /// The bound port once ``start()`` returned; nil before.
    public var port: Int? {
        state.withLock { state in
            if case .running(let port, _, _) = state { return port }
            return nil
        }
    }

    /// Binds and starts serving in the background; returns the bound port.
    /// - Throws: ``RelayAdminServerError`` `admin: cannot listen on ADDRESS: reason`.
    @discardableResult
    public func start() async throws(RelayAdminServerError) -> Int {
        let mayStart = state.withLock { state in
            guard case .idle = state else { return false }
            state = .starting
            return true
        }
        guard mayStart else { throw RelayAdminServerError("admin: the server at \(address) was already started") }

        let started = StartSignal()
        let application = Application(
            router: makeRouter(),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: nil),
            onServerRunning: { channel in started.succeed(port: channel.localAddress?.port ?? 0) },
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: logger)
        // A group of its own, without signals: the relay's group shuts it down through ``run()``.
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let task = Task {
            do {
                try await group.run()
                started.fail(RelayAdminServerError("the server stopped before it was listening"))
            } catch {
                started.fail(error)
                throw error
            }
        }
        let port: Int
        do {
            port = try await started.port()
        } catch {
            task.cancel()
            state.withLock { $0 = .stopped }
            throw RelayAdminServerError("admin: cannot listen on \(address): \(Self.reason(error))")
        }
        state.withLock { $0 = .running(port: port, group: group, task: task) }
        logger.info("Admin server listening", metadata: [
            "address": "\(RelayEndpoint(host: address.host, port: port))", "authentication": "\(token == nil ? "none (loopback)" : "token")",
        ])
        return port
    }

    /// Serves until graceful shutdown (or cancellation); starts first if ``start()`` was not called.
    public func run() async throws {
        if case .idle = state.withLock({ $0 }) {
            try await start()
        }
        guard case .running(_, let group, let task) = state.withLock({ $0 }) else { return }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await task.value
            } onGracefulShutdown: {
                Task { await group.triggerGracefulShutdown() }
            }
        } onCancel: {
            task.cancel()
        }
        state.withLock { $0 = .stopped }
    }

    /// Stops a server that was started but will not ``run()`` (the relay failed to start after it).
    public func shutdown() async {
        guard case .running(_, let group, let task) = state.withLock({ $0 }) else { return }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        state.withLock { $0 = .stopped }
    }

    private func makeRouter() -> Router<RelayAdminRequestContext> {
        let router = Router(context: RelayAdminRequestContext.self)
        router.add(middleware: RelayAdminErrorMiddleware())
        router.add(middleware: RelayAdminBrowserGuard(loopbackOnly: address.isLoopback))
        router.add(middleware: RelayAdminAuthentication(token: token))
        RelayAdminAPI.addRoutes(to: router, backend: backend, clock: clock)
        RelayDashboard.addRoutes(to: router, backend: backend, clock: clock)
        return router
    }

    /// `address already in use`, not NIO's call-site text.
    private static func reason(_ error: any Error) -> String {
        if let error = error as? IOError {
            return String(cString: strerror(error.errnoCode)).lowercased()
        }
        if let error = error as? RelayAdminServerError { return error.description }
        return "\(error)"
    }
}

/// The first of "listening on port N" and "failed", once.
private final class StartSignal: Sendable {
    private enum Outcome {
        case waiting(CheckedContinuation<Int, any Error>?)
        case done(Result<Int, any Error>)
    }

    private let outcome = Mutex(Outcome.waiting(nil))

    func succeed(port: Int) { finish(.success(port)) }
    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ result: Result<Int, any Error>) {
        let continuation: CheckedContinuation<Int, any Error>? = outcome.withLock { outcome in
            guard case .waiting(let continuation) = outcome else { return nil }
            outcome = .done(result)
            return continuation
        }
        continuation?.resume(with: result)
    }

    func port() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int, any Error>? = outcome.withLock { outcome in
                switch outcome {
                case .waiting:
                    outcome = .waiting(continuation)
                    return nil
                case .done(let result):
                    return result
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
